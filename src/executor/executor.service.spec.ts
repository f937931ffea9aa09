/**
 * The executor's fan-out against a real sshd, a real SQLite file and the real event
 * stream and writer, with fakes of our own runner cache and helpers: concurrency, the
 * error budget, fail-fast, cancel, drain, aggregation, events, and start-up recovery.
 */
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import { FakeHelpers, FakeRunnerCache } from '../../test/support/executor-fakes';
import { endpointOf, SshdInstance, startSshd, stopAll } from '../../test/support/sshd';
import { testConfig } from '../../test/support/config';
import { AppConfig } from '../config/app-config';
import { newExecution, newTarget } from '../executions/execution-factory';
import type { TargetRecord } from '../executions/records';
import { MetricsService } from '../metrics/metrics.service';
import { dataSourceOptions } from '../persistence/data-source-options';
import { ExecutionEventsRepository } from '../persistence/execution-events.repository';
import { ExecutionsRepository } from '../persistence/executions.repository';
import type { RunnerCacheService } from '../runner-cache/runner-cache.service';
import type { RuntimeHelpersService } from '../runtime-helpers/runtime-helpers.service';
import type { ServersService } from '../servers/servers.service';
import { SshPool } from '../ssh/ssh-pool.service';
import { ClusterBus } from '../queue/cluster-bus';
import { InProcessQueue } from '../queue/in-process-queue';
import { EventWriter } from '../status/event-writer.service';
import type { ExecutionEvent } from '../status/execution-event';
import { ExecutionEventsService } from '../status/execution-events.service';
import type { ExecutionPlan } from './execution-plan';
import { ExecutorService } from './executor.service';

jest.setTimeout(90000);

let sshd: SshdInstance;
let dir: string;
let config: AppConfig;
let ds: DataSource;
let repo: ExecutionsRepository;
let storedEvents: ExecutionEventsRepository;
let events: ExecutionEventsService;
let writer: EventWriter;
let pool: SshPool;
let executor: ExecutorService;
let seen: ExecutionEvent[];

beforeAll(async () => {
  Logger.overrideLogger(['error']);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-executor-'));
  sshd = await startSshd();
  config = testConfig(path.join(dir, 'data'));
  ds = new DataSource(dataSourceOptions(`sqlite:${path.join(dir, 'executor.db')}`));
  await ds.initialize();
  repo = new ExecutionsRepository(ds);
  storedEvents = new ExecutionEventsRepository(ds);
  events = new ExecutionEventsService();
  writer = new EventWriter(events, storedEvents, config);
  writer.onModuleInit();
  events.events$.subscribe((e) => seen.push(e));
  pool = new SshPool(config, new MetricsService());
  executor = await newExecutor();
});

/**
 * An executor as a process has one: with an in-process queue, alone on its database; each
 * one a process of its own (`process-<n>`).
 */
async function newExecutor(helpers = new FakeHelpers()): Promise<ExecutorService> {
  const e = new ExecutorService(
    { ...config, replicaId: `process-${executors.length + 1}` } as AppConfig,
    repo,
    storedEvents,
    events,
    writer,
    pool,
    new FakeRunnerCache() as unknown as RunnerCacheService,
    new MetricsService(),
    helpers as unknown as RuntimeHelpersService,
    {
      getEndpoint: async (serverId: string) => ({ ...sshdEndpoint(), serverId }),
      baseDirOfServer: async () => path.join(dir, 'base'),
    } as unknown as ServersService,
    new InProcessQueue(),
    new ClusterBus(),
  );
  await e.onModuleInit();
  executors.push(e);
  return e;
}
const executors: ExecutorService[] = [];

beforeEach(() => {
  seen = [];
});

afterAll(async () => {
  for (const e of executors) {
    e.onModuleDestroy();
    await e.drain(0);
  }
  await writer?.onApplicationShutdown();
  await pool?.onApplicationShutdown();
  await ds?.destroy();
  await sshd?.stop();
  await stopAll();
  fs.rmSync(dir, { recursive: true, force: true });
});

const sshdEndpoint = () => endpointOf(sshd);

interface JobOptions {
  targets: number;
  concurrency?: number;
  maxErrors?: number | null;
  failFast?: boolean;
  timeoutSeconds?: number;
  /** Store the sealed job, as JobsService does (a take-over can then start targets). */
  keepJob?: boolean;
}

/** Persists an execution with `n` targets on the one sshd and returns its plan. */
async function plan(script: string, o: JobOptions): Promise<ExecutionPlan> {
  const execution = newExecution({
    ownerId: `process-${executors.length}`, // the newest executor accepted it, as JobsService does
    request: {
      scriptType: 'bash',
      scriptBytes: script.length,
      envNames: [],
      timeoutSeconds: o.timeoutSeconds ?? 30,
      helperMode: 'bundled',
      concurrency: o.concurrency ?? 50,
      maxErrors: o.maxErrors ?? null,
      failFast: o.failFast ?? false,
      targets: { serverIds: [], tags: [] },
    },
  });
  const servers = Array.from({ length: o.targets }, (_, i) => ({
    id: `00000000-0000-4000-8000-${String(i + 1).padStart(12, '0')}`,
    name: `web-${i + 1}`,
  }));
  const targets = servers.map((s, i) => newTarget(execution.id, i, s));
  const job = { script: { type: 'bash' as const, content: script }, env: {}, input: null };
  await repo.create(execution, targets, o.keepJob ? executor.seal(execution.id, job) : null);
  return {
    execution,
    targets: targets.map((t, i) => ({
      targetId: t.id,
      position: i,
      serverId: t.serverId,
      serverName: t.serverName,
      baseDir: path.join(dir, 'base'),
      endpoint: async () => ({ ...sshdEndpoint(), serverId: t.serverId, serverName: t.serverName }),
    })),
    script: { type: 'bash', content: script },
    env: {},
    input: null,
    timeoutSeconds: o.timeoutSeconds ?? 30,
    helperMode: 'bundled',
    concurrency: o.concurrency ?? 50,
    maxErrors: o.maxErrors ?? null,
    failFast: o.failFast ?? false,
    priorFailures: 0,
  };
}

async function finished(id: string) {
  for (;;) {
    const found = await repo.find(id);
    if (found && !['queued', 'running'].includes(found.execution.status)) return found;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The most targets whose [startedAt, finishedAt] intervals overlap at one instant. */
function maxOverlap(targets: TargetRecord[]): number {
  const edges = targets.flatMap((t) => [
    [t.startedAt!, 1],
    [t.finishedAt!, -1],
  ]);
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let max = 0;
  for (const [, d] of edges) max = Math.max(max, (now += d));
  return max;
}

const statusesOf = (targets: TargetRecord[]) => targets.map((t) => t.status);

describe('ExecutorService', () => {
  it('runs every target, aggregates, and emits result, summary and end with gap-free seqs', async () => {
    const p = await plan('echo "on $CRONIUM_SERVER_ID"', { targets: 3 });
    await executor.submit(p);
    const { execution, targets } = await finished(p.execution.id);
    expect(execution.status).toBe('succeeded');
    expect(statusesOf(targets)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    const mine = seen.filter((e) => e.executionId === p.execution.id);
    expect(mine.map((e) => e.seq)).toEqual(mine.map((_, i) => i + 1));
    expect(mine.filter((e) => e.type === 'result')).toHaveLength(3);
    expect(mine.slice(-2).map((e) => e.type)).toEqual(['summary', 'end']);
    expect(mine.at(-2)).toMatchObject({ status: 'succeeded', data: { total: 3, succeeded: 3 } });
    await writer.flush();
    const stored = await storedEvents.replayPage(p.execution.id, 0, 1000);
    expect(stored.map((e) => e.seq)).toEqual(mine.map((e) => e.seq));
  });

  it('never runs more targets at once than the job concurrency', async () => {
    const p = await plan('sleep 0.4', { targets: 6, concurrency: 2 });
    await executor.submit(p);
    const { targets } = await finished(p.execution.id);
    expect(statusesOf(targets).every((s) => s === 'succeeded')).toBe(true);
    expect(maxOverlap(targets)).toBeLessThanOrEqual(2);

    // the same job unbounded really does overlap (so the check above can fail)
    const wide = await plan('sleep 0.4', { targets: 6, concurrency: 6 });
    await executor.submit(wide);
    expect(maxOverlap((await finished(wide.execution.id)).targets)).toBeGreaterThan(2);
  });

  it('skips targets not yet started once the error budget is spent', async () => {
    const p = await plan('exit 1', { targets: 5, concurrency: 1, maxErrors: 1 });
    await executor.submit(p);
    const { execution, targets } = await finished(p.execution.id);
    expect(statusesOf(targets)).toEqual(['failed', 'failed', 'skipped', 'skipped', 'skipped']);
    expect(execution.status).toBe('failed');
  });

  it('failFast also cancels the targets already running', async () => {
    const p = await plan(
      '[ "$CRONIUM_SERVER_ID" = 00000000-0000-4000-8000-000000000001 ] && exit 1; sleep 30',
      {
        targets: 3,
        maxErrors: 0,
        failFast: true,
      },
    );
    const started = Date.now();
    await executor.submit(p);
    const { execution, targets } = await finished(p.execution.id);
    expect(Date.now() - started).toBeLessThan(20000);
    expect(statusesOf(targets)).toEqual(['failed', 'cancelled', 'cancelled']);
    expect(execution.status).toBe('failed');
  });

  it('cancel ends a running execution cancelled; an unknown one is not running here', async () => {
    const p = await plan('sleep 30', { targets: 2 });
    await executor.submit(p);
    while (!seen.some((e) => e.executionId === p.execution.id && e.status === 'running')) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(executor.cancel(p.execution.id)).toBe(true);
    const { execution, targets } = await finished(p.execution.id);
    expect(execution.status).toBe('cancelled');
    expect(statusesOf(targets)).toEqual(['cancelled', 'cancelled']);
    expect(executor.cancel(p.execution.id)).toBe(false);
    expect(executor.cancel('00000000-0000-4000-8000-00000000dead')).toBe(false);
  });

  it('drain waits out the grace, then cancels what is left', async () => {
    const quick = await plan('sleep 0.2', { targets: 1 });
    const slow = await plan('sleep 30', { targets: 1 });
    await executor.submit(quick);
    await executor.submit(slow);
    const t0 = Date.now();
    await executor.drain(1500);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
    expect((await finished(quick.execution.id)).execution.status).toBe('succeeded');
    expect((await finished(slow.execution.id)).execution.status).toBe('cancelled');
  });

  it('takes over what a previous process left in flight; what cannot be re-attached is orchestrator_restarted', async () => {
    const p = await plan('true', { targets: 3 });
    await repo.updateExecution(p.execution.id, {
      status: 'running',
      startedAt: Date.now(),
      ownerId: 'a-process-that-died',
      heartbeatAt: Date.now(),
    });
    // running, but its run is not on the server: attach finds no such run
    await repo.updateTarget(p.targets[0].targetId, { status: 'running', startedAt: Date.now() });
    // never reached its server: its script lived only in the dead process
    await repo.updateTarget(p.targets[1].targetId, { status: 'connecting' });
    await repo.updateTarget(p.targets[2].targetId, { status: 'succeeded', exitCode: 0 });
    await newExecutor(); // a new process: it takes over at start-up
    const { execution, targets } = await finished(p.execution.id);
    expect(execution.status).toBe('partial');
    expect(execution.ownerId).toBe('process-2');
    expect(targets[0]).toMatchObject({ status: 'failed', errorCode: 'orchestrator_restarted' });
    expect(targets[0].replicaId).toBe('process-2');
    expect(targets[1]).toMatchObject({ status: 'failed', errorCode: 'orchestrator_restarted' });
    expect(targets[2].status).toBe('succeeded');
    const results = seen.filter((e) => e.executionId === p.execution.id && e.type === 'result');
    expect(results).toHaveLength(2);
  });

  it('a take-over starts the targets that had not started, from the stored sealed job', async () => {
    const marker = path.join(dir, `ran-${Date.now()}`);
    const p = await plan(`echo run >> ${marker}; echo "started by the successor"`, {
      targets: 2,
      keepJob: true,
    });
    await repo.updateExecution(p.execution.id, {
      status: 'running',
      startedAt: Date.now(),
      ownerId: 'a-process-that-died',
      heartbeatAt: Date.now(),
    });
    // it was connecting when its process died: the server is asked first (no such run)
    await repo.updateTarget(p.targets[0].targetId, { status: 'connecting' });
    await newExecutor();
    const { execution, targets } = await finished(p.execution.id);
    expect(statusesOf(targets)).toEqual(['succeeded', 'succeeded']);
    expect(execution.status).toBe('succeeded');
    // each target ran its script exactly once
    expect(fs.readFileSync(marker, 'utf8')).toBe('run\nrun\n');
    await writer.flush();
    const logs = await storedEvents.logs(p.execution.id, 0, 100);
    expect(logs.filter((l) => l.text === 'started by the successor')).toHaveLength(2);
    // the sealed job stays once the execution has ended, for a rerun (keepJobForRerun)
    expect(await repo.payloadOf(p.execution.id)).not.toBeNull();
  });

  it('a result it cannot store fails that target with internal_error; the others and the execution still end', async () => {
    const helpers = new FakeHelpers();
    helpers.keep = true;
    let n = 0;
    // the first target's results are a value too deep for the database layer to serialize
    helpers.applyBundled = async () => ({
      output: n++ === 0 ? JSON.parse('['.repeat(20000) + ']'.repeat(20000)) : 'fine',
      condition: true,
    });
    const own = await newExecutor(helpers);
    const p = await plan('echo hi', { targets: 2, concurrency: 1 });
    await own.submit(p);
    const { execution, targets } = await finished(p.execution.id);
    expect(statusesOf(targets)).toEqual(['failed', 'succeeded']);
    expect(targets[0]).toMatchObject({ errorCode: 'internal_error', output: null });
    expect(targets[1]).toMatchObject({ output: 'fine' });
    expect(execution.status).toBe('partial');
    const mine = seen.filter((e) => e.executionId === p.execution.id);
    expect(mine.filter((e) => e.type === 'result')).toHaveLength(2);
    expect(mine.slice(-2).map((e) => e.type)).toEqual(['summary', 'end']);
  });
});
