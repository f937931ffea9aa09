/**
 * `npm run bench cluster`: the cluster path (BullMQ on Redis, PostgreSQL) against 10 sshd's.
 *
 *   throughput   jobs per second on 1, 2 and 3 replicas: BENCH_JOBS one-target `echo ok`
 *                jobs over the 10 servers, BENCH_INFLIGHT at a time, submitted round-robin
 *                to the replicas and waited for on the replica that took them (polled
 *                every 25 ms)
 *   takeover     a replica SIGKILLed mid-job: from the kill to the survivor's "taken over;
 *                re-attached" log entry, BENCH_TAKEOVERS times, with the default timings
 *                (queue.lockDurationMs 10 s, executor.ownerStaleSeconds 12 s)
 *   warm         one `echo ok` job end to end (POST → final GET), BENCH_N times, through:
 *                one process on SQLite (the embedded default), one process on PostgreSQL
 *                without Redis, and a 1- and a 2-replica cluster
 *
 * Jobs run as the harness's plain-shell user (cronium-test), as in warm-latency.
 * Every replica runs on this machine, as do the sshd's, PostgreSQL and Redis: the
 * scale-out ratio says what a second and third process add on the same cores, not on
 * more machines. See bench/README.md.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freshDatabase, startCluster, type Cluster } from '../test/support/cluster';
import type { ServiceProcess } from '../test/support/service-process';
import { ensureTestUser, SshdInstance, startSshd } from '../test/support/sshd';
import {
  envCount,
  idsOf,
  machineEnv,
  nowMs,
  onCleanup,
  printTable,
  runBench,
  sleep,
  startService,
  stats,
  Stats,
  writeResults,
} from './support';

const SERVERS = 10;
const JOBS = envCount('BENCH_JOBS', 300);
const INFLIGHT = envCount('BENCH_INFLIGHT', 30);
const TAKEOVERS = envCount('BENCH_TAKEOVERS', 10);
const N = envCount('BENCH_N', 50);
const THROUGHPUT_POLL_MS = 25;

/** The production defaults, not the tests' fast ones. */
const DEFAULT_TIMINGS = {
  CRONIUM__QUEUE__LOCK_DURATION_MS: '10000',
  CRONIUM__QUEUE__STALLED_INTERVAL_MS: '5000',
  CRONIUM__QUEUE__RETRY_DELAY_MS: '1000',
  CRONIUM__EXECUTOR__OWNER_HEARTBEAT_SECONDS: '3',
  CRONIUM__EXECUTOR__OWNER_STALE_SECONDS: '12',
};

/**
 * The user every job runs as: the harness's plain-shell user (root's .bashrc here runs
 * `pyenv init`, ~120 ms of CPU per session, which would be all this bench measured).
 */
let user = '';

/** Its base dir under each sshd's dir (root-owned 0711, so made here and handed over). */
function baseDirFor(s: SshdInstance): string {
  const dir = path.join(s.dir, `cronium-${user}`);
  if (!fs.existsSync(dir)) {
    fs.mkdirSync(dir, { mode: 0o700 });
    const { uid, gid } = idsOf(user);
    fs.chownSync(dir, uid, gid);
  }
  return dir;
}

async function registerAll(svc: ServiceProcess, sshds: SshdInstance[]): Promise<string[]> {
  const ids: string[] = [];
  for (const [i, s] of sshds.entries()) {
    const r = await svc.registerServer(s, {
      name: `bench-${i}`,
      username: user,
      baseDir: baseDirFor(s),
    });
    ids.push(r.body.id);
  }
  return ids;
}

async function job(svc: ServiceProcess, serverId: string, content = 'echo ok'): Promise<string> {
  const r = await svc.api('POST', '/v1/jobs', {
    script: { type: 'bash', content },
    targets: { serverIds: [serverId] },
  });
  if (r.status !== 202) throw new Error(`POST /v1/jobs: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.id;
}

/** One job end to end, polling every `pollMs`; throws unless it succeeded. */
async function timedJob(svc: ServiceProcess, serverId: string, pollMs = 1): Promise<number> {
  const t0 = nowMs();
  const id = await job(svc, serverId);
  const ex = await svc.waitForExecution(id, { pollMs });
  if (ex.status !== 'succeeded') throw new Error(`job ${id} ${ex.status}`);
  return nowMs() - t0;
}

/** Every server warm (pooled connection, runner deployed) on every replica. */
async function warmUp(replicas: ServiceProcess[], serverIds: string[]): Promise<void> {
  for (const svc of replicas) {
    await Promise.all(serverIds.map((id) => timedJob(svc, id)));
  }
}

async function throughput(replicas: ServiceProcess[], serverIds: string[]): Promise<number> {
  let next = 0;
  const t0 = nowMs();
  const worker = async () => {
    for (let i = next++; i < JOBS; i = next++) {
      // Polling less often than the latency series: many clients polling back to back
      // would measure the GETs, not the jobs.
      await timedJob(
        replicas[i % replicas.length],
        serverIds[i % serverIds.length],
        THROUGHPUT_POLL_MS,
      );
    }
  };
  await Promise.all(Array.from({ length: INFLIGHT }, worker));
  return JOBS / ((nowMs() - t0) / 1000);
}

async function clusterOf(replicas: number, env: Record<string, string> = {}): Promise<Cluster> {
  const c = await startCluster({ replicas, env });
  onCleanup(`cluster of ${replicas}`, () => c.stop());
  return c;
}

/** Kill → the survivor's "taken over" entry, in ms. */
async function takeover(c: Cluster, serverId: string): Promise<number> {
  const [a] = c.replicas;
  const id = await job(a, serverId, 'for i in $(seq 1 1200); do echo "$i"; sleep 0.05; done');
  let ownerId = '';
  while (!ownerId) {
    const t = (await a.api('GET', `/v1/executions/${id}`)).body.targets[0];
    if (t.status === 'running') ownerId = t.replicaId;
    else await sleep(20);
  }
  const owner = c.byId(ownerId)!;
  const survivor = c.replicas.find((r) => r !== owner && r.exitStatus() === null)!;
  await sleep(300);
  const killedAt = Date.now();
  await owner.stop('SIGKILL');
  for (;;) {
    // The take-over's entry comes before the backlog it streams: within the first page.
    const logs = (await survivor.api('GET', `/v1/executions/${id}/logs?limit=1000`)).body
      .entries as any[];
    const hit = logs.find((l) => l.stream === 'system' && /taken over/.test(l.text));
    if (hit) {
      await survivor.api('POST', `/v1/executions/${id}/cancel`);
      await survivor.waitForExecution(id, { pollMs: 50 });
      c.replicas.splice(c.replicas.indexOf(owner), 1);
      return Date.parse(hit.ts) - killedAt;
    }
    if (Date.now() - killedAt > 120_000) throw new Error('no take-over within 120 s');
    await sleep(50);
  }
}

async function warmSeries(svc: ServiceProcess[], serverId: string): Promise<Stats> {
  const samples: number[] = [];
  for (let i = 0; i < N; i++) samples.push(await timedJob(svc[i % svc.length], serverId));
  return stats(samples);
}

async function main(): Promise<void> {
  const started = Date.now();
  const load = os.loadavg();
  user = (await ensureTestUser()).username;
  const sshds: SshdInstance[] = [];
  for (let i = 0; i < SERVERS; i++) {
    const s = await startSshd({ maxSessions: 100 });
    onCleanup(`sshd ${s.port}`, () => s.stop());
    sshds.push(s);
  }

  // --- throughput: one process on SQLite (the embedded default), then 1, 2, 3 replicas
  const perSecond: Record<string, number> = {};
  const alone = await startService({ env: { NODE_ENV: 'test' } });
  const aloneIds = await registerAll(alone, sshds);
  await warmUp([alone], aloneIds);
  const single = await throughput([alone], aloneIds);
  console.log(`one process on SQLite: ${single.toFixed(1)} jobs/s`);
  await alone.stop();
  for (const n of [1, 2, 3]) {
    const c = await clusterOf(n);
    const ids = await registerAll(c.replicas[0], sshds);
    await warmUp(c.replicas, ids);
    perSecond[n] = await throughput(c.replicas, ids);
    console.log(`${n} replica(s): ${perSecond[n].toFixed(1)} jobs/s`);
    await c.stop();
  }

  // --- take-over after SIGKILL, default timings
  const tc = await clusterOf(2, DEFAULT_TIMINGS);
  const [tid] = await registerAll(tc.replicas[0], sshds.slice(0, 1));
  const takeovers: number[] = [];
  for (let i = 0; i < TAKEOVERS; i++) {
    while (tc.replicas.length < 2) await tc.add();
    takeovers.push(await takeover(tc, tid));
    console.log(`take-over ${i + 1}: ${takeovers.at(-1)} ms`);
  }
  await tc.stop();

  // --- warm latency: single process (SQLite; PostgreSQL) vs cluster (1 and 2 replicas)
  const warm: Record<string, Stats> = {};
  const sqlite = await startService({ env: { NODE_ENV: 'test' } });
  const [sid] = await registerAll(sqlite, sshds.slice(0, 1));
  await warmUp([sqlite], [sid]);
  warm['single, SQLite'] = await warmSeries([sqlite], sid);
  await sqlite.stop();
  const db = await freshDatabase();
  onCleanup('database', () => db.drop());
  const pg = await startService({ env: { NODE_ENV: 'test', DATABASE_URL: db.url } });
  const [pid] = await registerAll(pg, sshds.slice(0, 1));
  await warmUp([pg], [pid]);
  warm['single, PostgreSQL'] = await warmSeries([pg], pid);
  await pg.stop();
  for (const n of [1, 2]) {
    const c = await clusterOf(n);
    const [cid] = await registerAll(c.replicas[0], sshds.slice(0, 1));
    await warmUp(c.replicas, [cid]);
    warm[`cluster of ${n}`] = await warmSeries(c.replicas, cid);
    await c.stop();
  }

  console.log('');
  printTable(
    ['throughput', 'jobs/s', 'vs 1 replica'],
    [
      ['one process, SQLite', single.toFixed(1), (single / perSecond[1]).toFixed(2) + '×'],
      ...[1, 2, 3].map((n) => [
        `${n} replica(s)`,
        perSecond[n].toFixed(1),
        (perSecond[n] / perSecond[1]).toFixed(2) + '×',
      ]),
    ],
    1,
  );
  const to = stats(takeovers);
  console.log(
    `\ntake-over after SIGKILL (n=${to.n}): p50 ${to.p50.toFixed(0)} ms, min ${to.min} ms, max ${to.max} ms`,
  );
  console.log('');
  const base = warm['single, SQLite'].p50;
  printTable(
    ['warm job path', 'p50 ms', 'p95 ms', 'vs single SQLite'],
    Object.entries(warm).map(([k, s]) => [
      k,
      s.p50.toFixed(1),
      s.p95.toFixed(1),
      (s.p50 / base).toFixed(2) + '×',
    ]),
    1,
  );
  writeResults('cluster', started, {
    params: { servers: SERVERS, jobs: JOBS, inflight: INFLIGHT, takeovers: TAKEOVERS, N, user },
    env: machineEnv(load),
    throughput: { singleSqlite: single, ...perSecond },
    takeoverMs: takeovers,
    takeover: to,
    warm,
  });
}

runBench(main);
