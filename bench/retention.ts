/**
 * The retention sweep of BENCH_EVENTS (100 000) stored execution events, seeded directly
 * by SQL (BENCH_EVENTS_PER_EXECUTION per finished execution, all past retention.days), on
 * SQLite and, when it answers, PostgreSQL (test/support/postgres.ts): the sweep's wall
 * time, and the event-loop delay meanwhile (src/health/event-loop-lag.ts's p99 as
 * /health reports it, which includes its 20 ms resolution; the worst delay a 10 ms
 * histogram saw; how late a 5 ms timer fired at worst), against the same with nothing
 * running (the machine's own noise).
 */
import * as fs from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import type { AppConfig } from '../src/config/app-config';
import { EventLoopLag } from '../src/health/event-loop-lag';
import { MetricsService } from '../src/metrics/metrics.service';
import { dataSourceOptions } from '../src/persistence/data-source-options';
import { RetentionRepository } from '../src/retention/retention.repository';
import { RetentionService } from '../src/retention/retention.service';
import { freshSchema, postgresReachable } from '../test/support/postgres';
import {
  envCount,
  machineEnv,
  nowMs,
  onCleanup,
  printTable,
  runBench,
  sleep,
  writeResults,
} from './support';

const EVENTS = envCount('BENCH_EVENTS', 100_000);
const PER_EXECUTION = envCount('BENCH_EVENTS_PER_EXECUTION', 500);
const BATCH = envCount('BENCH_BATCH', 500);
const OLD = Date.now() - 90 * 24 * 3600 * 1000;

const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

/** The executions (one target each) and their events, in one statement per table and chunk. */
async function seed(ds: DataSource): Promise<number> {
  const executions = Math.ceil(EVENTS / PER_EXECUTION);
  const q = (sql: string) => ds.query(sql);
  const request = JSON.stringify({ scriptType: 'bash', targets: { serverIds: [] } });
  for (let i = 0; i < executions; i += 500) {
    const ids = Array.from({ length: Math.min(500, executions - i) }, (_x, k) => i + k + 1);
    await q(
      `INSERT INTO "executions" ("id","status","request","createdAt","finishedAt") VALUES ` +
        ids.map((n) => `('${uuid(n)}','succeeded','${request}',${OLD + n},${OLD + n})`).join(','),
    );
    await q(
      `INSERT INTO "execution_targets" ("id","executionId","position","serverId","serverName","status","phases","truncated") VALUES ` +
        ids
          .map((n) => `('${uuid(n + 1e9)}','${uuid(n)}',0,'${uuid(1)}','s','succeeded','{}',false)`)
          .join(','),
    );
  }
  let made = 0;
  for (let n = 1; n <= executions && made < EVENTS; n++) {
    const count = Math.min(PER_EXECUTION, EVENTS - made);
    for (let s = 0; s < count; s += 500) {
      const rows = Array.from({ length: Math.min(500, count - s) }, (_x, k) => s + k + 1);
      await q(
        `INSERT INTO "execution_events" ("executionId","seq","type","logSeq","stream","ts","text") VALUES ` +
          rows
            .map(
              (seq) =>
                `('${uuid(n)}',${seq},'log',${seq},'stdout',${OLD},'line ${seq} of a script')`,
            )
            .join(','),
      );
    }
    made += count;
  }
  return executions;
}

/** Event-loop figures while `work` runs (or for `idleMs` when there is none). */
async function measureLoop<T>(work: () => Promise<T>) {
  const lag = new EventLoopLag(600_000);
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  let worstLateMs = 0;
  let last = nowMs();
  const ticker = setInterval(() => {
    const t = nowMs();
    worstLateMs = Math.max(worstLateMs, t - last - 5);
    last = t;
  }, 5);
  const started = nowMs();
  try {
    const result = await work();
    return {
      result,
      wallMs: nowMs() - started,
      lagP99Ms: lag.p99Ms,
      // The histogram records whole timer intervals: past the resolution is the delay.
      loopMaxMs: Math.max(0, h.max / 1e6 - 10),
      timerWorstLateMs: worstLateMs,
    };
  } finally {
    clearInterval(ticker);
    h.disable();
    lag.stop();
  }
}

async function run(db: string, url: string) {
  const ds = new DataSource(dataSourceOptions(url));
  await ds.initialize();
  try {
    const t0 = nowMs();
    const executions = await seed(ds);
    const seedMs = nowMs() - t0;
    const config = {
      retention: { days: 30, maxExecutions: 0, intervalSeconds: 0, batchSize: BATCH },
    } as AppConfig;
    const service = new RetentionService(config, new RetentionRepository(ds), new MetricsService());
    const idle = await measureLoop(() => sleep(2000));
    const sweep = await measureLoop(() => service.sweep());
    const left = Number((await ds.query('SELECT COUNT(*) AS n FROM "execution_events"'))[0].n);
    if (sweep.result.events !== EVENTS || left !== 0)
      throw new Error(`swept ${sweep.result.events} of ${EVENTS} events, ${left} left`);
    return { db, executions, seedMs, idle, sweep };
  } finally {
    await ds.destroy();
  }
}

runBench(async () => {
  const started = Date.now();
  const loadavg = os.loadavg();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-bench-retention-'));
  onCleanup('data dir', () => fs.rmSync(dir, { recursive: true, force: true }));
  const runs = [await run('SQLite', `sqlite:${path.join(dir, 'r.db')}`)];
  if (await postgresReachable()) {
    const s = await freshSchema();
    onCleanup('schema', s.drop);
    runs.push(await run('PostgreSQL', s.url));
  } else console.warn('PostgreSQL on 127.0.0.1:5432 is not reachable: SQLite only');

  const f = (n: number) => n.toFixed(1);
  console.log(
    `\nretention sweep: ${EVENTS} events in executions of ${PER_EXECUTION}, ${BATCH} rows per DELETE\n`,
  );
  printTable(
    [
      'database',
      'sweep s',
      'events/s',
      'health lag p99 ms',
      'loop max ms',
      'timer late ms',
      'idle max ms',
    ],
    runs.map((r) => [
      r.db,
      (r.sweep.wallMs / 1000).toFixed(2),
      String(Math.round(EVENTS / (r.sweep.wallMs / 1000))),
      f(r.sweep.lagP99Ms),
      f(r.sweep.loopMaxMs),
      f(r.sweep.timerWorstLateMs),
      f(r.idle.loopMaxMs),
    ]),
    1,
  );
  writeResults('retention', started, {
    env: { ...machineEnv(loadavg), events: EVENTS, perExecution: PER_EXECUTION, batch: BATCH },
    runs,
  });
});
