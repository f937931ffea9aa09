import { Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataSource, IsNull, Not } from 'typeorm';
import type { AppConfig } from '../src/config/app-config';
import { newExecution, newTarget } from '../src/executions/execution-factory';
import type { ExecutionRequestSummary } from '../src/executions/request';
import { MetricsService } from '../src/metrics/metrics.service';
import { dataSourceOptions } from '../src/persistence/data-source-options';
import {
  ExecutionEntity,
  ExecutionEventEntity,
  ExecutionTargetEntity,
  NotificationAttemptEntity,
  NotificationEntity,
  VariableEntity,
} from '../src/persistence/entities';
import { ExecutionsRepository } from '../src/persistence/executions.repository';
import { RetentionRepository } from '../src/retention/retention.repository';
import { RetentionService } from '../src/retention/retention.service';
import { startApp } from './support/app';
import { sample } from './support/metrics';
import { freshSchema, postgresReachableSync } from './support/postgres';

const DAY = 24 * 3600 * 1000;
const NOW = Date.now();

/** Stores an execution with `targets` targets, `events` events and a notification with 2 attempts. */
async function seed(
  ds: DataSource,
  o: { createdAt: number; finishedAt: number | null; targets?: number; events?: number },
): Promise<string> {
  const e = newExecution({
    createdAt: o.createdAt,
    request: {} as ExecutionRequestSummary, // never read here
  });
  e.status = o.finishedAt === null ? 'running' : 'succeeded';
  e.finishedAt = o.finishedAt;
  const targets = Array.from({ length: o.targets ?? 2 }, (_x, i) =>
    newTarget(e.id, i, { id: randomUUID(), name: `s${i}` }),
  );
  await new ExecutionsRepository(ds).create(e, targets);
  const events = Array.from({ length: o.events ?? 20 }, (_x, i) => ({
    executionId: e.id,
    seq: i + 1,
    type: 'log' as const,
    serverId: targets[0].serverId,
    logSeq: i + 1,
    stream: 'stdout' as const,
    ts: o.createdAt,
    text: `line ${i}`,
    data: null,
    byteOffset: null,
  }));
  for (let i = 0; i < events.length; i += 100) {
    await ds.getRepository(ExecutionEventEntity).insert(events.slice(i, i + 100));
  }
  const nid = randomUUID();
  await ds.getRepository(NotificationEntity).insert({
    id: nid,
    executionId: e.id,
    url: 'http://127.0.0.1:9/hook',
    secret: null,
    status: 'failed',
    body: '{}',
    attempts: 2,
    nextAttemptAt: null,
    claimedBy: null,
    claimedAt: null,
    createdAt: o.createdAt,
  });
  await ds.getRepository(NotificationAttemptEntity).insert(
    [1, 2].map((attempt) => ({
      notificationId: nid,
      attempt,
      executionId: e.id,
      at: o.createdAt,
      httpStatus: 500,
      error: 'HTTP 500',
      durationMs: 1,
    })),
  );
  return e.id;
}

/** Rows of each kind an execution still has. */
async function rowsOf(ds: DataSource, id: string) {
  const n = (entity: any, where: Record<string, string>) => ds.getRepository(entity).countBy(where);
  return {
    executions: await n(ExecutionEntity, { id }),
    targets: await n(ExecutionTargetEntity, { executionId: id }),
    events: await n(ExecutionEventEntity, { executionId: id }),
    notifications: await n(NotificationEntity, { executionId: id }),
    attempts: await n(NotificationAttemptEntity, { executionId: id }),
  };
}

function retentionOn(ds: DataSource, retention: Partial<AppConfig['retention']>) {
  const metrics = new MetricsService();
  const config = {
    retention: { days: 30, maxExecutions: 0, intervalSeconds: 0, batchSize: 7, ...retention },
  } as AppConfig;
  return { service: new RetentionService(config, new RetentionRepository(ds), metrics), metrics };
}

async function deletedMetric(metrics: MetricsService, kind: string): Promise<number> {
  return sample(
    await metrics.registry.metrics(),
    'cronium_retention_deleted_total',
    `kind="${kind}"`,
  );
}

function retentionContract(name: string, url: () => Promise<string>) {
  describe(`retention on ${name}`, () => {
    let ds: DataSource;

    beforeAll(async () => {
      ds = new DataSource(dataSourceOptions(await url()));
      await ds.initialize(); // runs the migrations
    });
    afterAll(async () => ds?.destroy());

    it('sweeps finished executions past retention.days with all their rows, in bounded batches', async () => {
      const old = await seed(ds, {
        createdAt: NOW - 40 * DAY,
        finishedAt: NOW - 40 * DAY,
        events: 30,
      });
      const old2 = await seed(ds, {
        createdAt: NOW - 35 * DAY,
        finishedAt: NOW - 31 * DAY,
        targets: 9,
      });
      const recent = await seed(ds, { createdAt: NOW - 40 * DAY, finishedAt: NOW - 29 * DAY });
      const running = await seed(ds, { createdAt: NOW - 90 * DAY, finishedAt: null });
      await ds.getRepository(VariableEntity).insert({
        userId: 'u',
        key: 'k',
        value: { kept: true },
        updatedAt: NOW - 400 * DAY,
      });
      const { service, metrics } = retentionOn(ds, { days: 30 });
      const before = await deletedMetric(metrics, 'events');
      const logged = jest.spyOn(Logger.prototype, 'log');
      try {
        const counts = await service.sweep(NOW);
        expect(counts).toEqual({
          events: 50,
          targets: 11,
          notification_attempts: 4,
          notifications: 2,
          executions: 2,
        });
        const line = logged.mock.calls.find(([m]) => (m as any)?.msg === 'retention sweep');
        expect(line?.[0]).toMatchObject({ deleted: counts });
      } finally {
        logged.mockRestore();
      }
      const none = { executions: 0, targets: 0, events: 0, notifications: 0, attempts: 0 };
      expect(await rowsOf(ds, old)).toEqual(none);
      expect(await rowsOf(ds, old2)).toEqual(none);
      const all = { executions: 1, targets: 2, events: 20, notifications: 1, attempts: 2 };
      expect(await rowsOf(ds, recent)).toEqual(all);
      expect(await rowsOf(ds, running)).toEqual(all); // not ended: never swept, however old
      expect(await ds.getRepository(VariableEntity).countBy({ userId: 'u' })).toBe(1);
      expect((await deletedMetric(metrics, 'events')) - before).toBe(50);
      // Nothing left to do: a second sweep deletes nothing.
      expect(Object.values(await service.sweep(NOW)).every((n) => n === 0)).toBe(true);
    });

    it('keeps only the newest retention.maxExecutions finished executions', async () => {
      await ds.getRepository(ExecutionEntity).delete({ finishedAt: Not(IsNull()) }); // earlier tests'
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        ids.push(
          await seed(ds, { createdAt: NOW - (10 - i) * 1000, finishedAt: NOW - 500, events: 3 }),
        );
      }
      const running = await seed(ds, { createdAt: NOW - 20_000, finishedAt: null, events: 3 });
      const counts = await retentionOn(ds, { days: 0, maxExecutions: 3 }).service.sweep(NOW);
      expect(counts.executions).toBe(2);
      expect((await rowsOf(ds, ids[0])).executions).toBe(0);
      expect((await rowsOf(ds, ids[1])).executions).toBe(0);
      for (const id of [...ids.slice(2), running])
        expect((await rowsOf(ds, id)).executions).toBe(1);
      expect((await rowsOf(ds, ids[0])).events).toBe(0);
    });

    it('retention.days 0 and maxExecutions 0: nothing is swept', async () => {
      const id = await seed(ds, { createdAt: NOW - 400 * DAY, finishedAt: NOW - 400 * DAY });
      const counts = await retentionOn(ds, { days: 0, maxExecutions: 0 }).service.sweep(NOW);
      expect(Object.values(counts).every((n) => n === 0)).toBe(true);
      expect((await rowsOf(ds, id)).executions).toBe(1);
    });
  });
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-retention-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
retentionContract('SQLite', async () => `sqlite:${path.join(dir, 'r.db')}`);

const reachable = postgresReachableSync();
if (!reachable)
  console.warn('PostgreSQL on 127.0.0.1:5432 is not reachable: PostgreSQL suites not run');
if (reachable) {
  const drops: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const drop of drops) await drop();
  });
  retentionContract('PostgreSQL', async () => {
    const s = await freshSchema();
    drops.push(s.drop);
    return s.url;
  });
}

describe('retention in the service', () => {
  it('sweeps by itself every retention.intervalSeconds; swept executions are gone from the API', async () => {
    const t = await startApp({
      CRONIUM__RETENTION__INTERVAL_SECONDS: '1',
      CRONIUM__RETENTION__DAYS: '1',
    });
    try {
      const ds = t.app.get(DataSource);
      const old = await seed(ds, { createdAt: NOW - 3 * DAY, finishedAt: NOW - 2 * DAY });
      const kept = await seed(ds, { createdAt: NOW - 1000, finishedAt: NOW - 500 });
      expect((await t.http().get(`/v1/executions/${old}`).set(t.auth)).status).toBe(200);
      const deadline = Date.now() + 30000;
      while ((await t.http().get(`/v1/executions/${old}`).set(t.auth)).status !== 404) {
        if (Date.now() > deadline) throw new Error('the periodic sweep never ran');
        await new Promise((r) => setTimeout(r, 100));
      }
      expect((await t.http().get(`/v1/executions/${kept}`).set(t.auth)).status).toBe(200);
      expect((await t.http().get(`/v1/executions/${old}/notifications`).set(t.auth)).status).toBe(
        404,
      );
      const text = (await t.http().get('/metrics')).text;
      expect(
        sample(text, 'cronium_retention_deleted_total', 'kind="executions"'),
      ).toBeGreaterThanOrEqual(1);
    } finally {
      await t.close();
    }
  });
});
