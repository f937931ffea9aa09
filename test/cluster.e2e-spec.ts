/**
 * Replicas sharing the work on BullMQ, PostgreSQL and Redis: real service processes
 * (node dist/main.js) against the PostgreSQL on 127.0.0.1:5432 (a fresh database per
 * cluster) and the Redis on 127.0.0.1:6379 (a fresh key prefix per cluster), killed with
 * real signals, running scripts on a real sshd.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Queue } from 'bullmq';
import Redis from 'ioredis';
import WebSocket from 'ws';
import { Cluster, freshDatabase, privateRedis, startCluster } from './support/cluster';
import { privatePostgres } from './support/private-postgres';
import { alive, eventually } from './support/processes';
import { ServiceProcess, startServiceProcess } from './support/service-process';
import { SshdInstance, startSshd } from './support/sshd';

jest.setTimeout(180_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let sshd: SshdInstance;
beforeAll(async () => {
  sshd = await startSshd();
});
afterAll(async () => sshd?.stop());

async function register(svc: ServiceProcess, name: string): Promise<string> {
  const r = await svc.registerServer(sshd, { name, baseDir: `${sshd.dir}/base` });
  return r.body.id;
}

async function submit(svc: ServiceProcess, body: Record<string, unknown>): Promise<string> {
  const r = await svc.api('POST', '/v1/jobs', body);
  expect(r.status).toBe(202);
  return r.body.id;
}

/** Waits until the execution's first target runs somewhere; returns its replica id. */
async function runningOn(svc: ServiceProcess, id: string, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ex = (await svc.api('GET', `/v1/executions/${id}`)).body;
    const t = ex.targets?.[0];
    if (t?.status === 'running' && t.replicaId) return t.replicaId;
    if (Date.now() > deadline) throw new Error(`execution ${id} never ran: ${JSON.stringify(ex)}`);
    await sleep(50);
  }
}

async function allLogs(svc: ServiceProcess, id: string): Promise<any[]> {
  const out: any[] = [];
  for (let after = 0; ; ) {
    const r = await svc.api('GET', `/v1/executions/${id}/logs?afterSeq=${after}&limit=1000`);
    out.push(...r.body.entries);
    if (r.body.entries.length < 1000) return out;
    after = r.body.nextSeq;
  }
}

const stdoutOf = (logs: any[]) => logs.filter((l) => l.stream === 'stdout').map((l) => l.text);
const lines = (n: number) => Array.from({ length: n }, (_, i) => `line ${i + 1}`);
const script = (n: number, pause: number, exit: number) =>
  `for i in $(seq 1 ${n}); do echo "line $i"; sleep ${pause}; done; exit ${exit}`;

/** A websocket subscriber recording every update of one execution. */
async function subscribe(svc: ServiceProcess, executionId: string) {
  const ws = new WebSocket(svc.base.replace(/^http/, 'ws') + `/v1/status?token=${svc.token}`);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const updates: any[] = [];
  ws.on('message', (raw) => {
    const m = JSON.parse(raw.toString());
    if (m.event === 'update') updates.push(m.data);
  });
  ws.send(JSON.stringify({ event: 'subscribe', data: { executionId } }));
  return {
    updates,
    ended: () => eventually(async () => updates.some((u) => u.type === 'end'), 60_000),
    close: () => ws.close(),
  };
}

describe('a cluster of replicas (PostgreSQL + Redis + BullMQ)', () => {
  let cluster: Cluster;
  afterEach(async () => cluster?.stop());

  it('a replica SIGKILLed mid-job: another one takes it over and re-attaches; real exit code, every line once, the script ran once', async () => {
    cluster = await startCluster({ replicas: 2 });
    const [a] = cluster.replicas;
    const serverId = await register(a, 'failover');
    const count = path.join(sshd.dir, `runs-${Date.now()}`);
    const id = await submit(a, {
      script: {
        type: 'bash',
        // API-mode helpers before the kill and after the take-over (another replica serves them)
        content: [
          `echo run >> ${count}`,
          'cronium.setCondition true',
          'for i in $(seq 1 40); do echo "line $i"; sleep 0.1; done',
          'cronium.output "$(cronium.input)"',
          'exit 3',
        ].join('\n'),
      },
      input: { n: 7 },
      helperMode: 'api',
      targets: { serverIds: [serverId] },
    });
    const owner = cluster.byId(await runningOn(a, id))!;
    await sleep(800); // some lines out and stored
    await owner.stop('SIGKILL');
    const survivor = cluster.replicas.find((r) => r !== owner)!;

    const ex = await survivor.waitForExecution(id, { timeoutMs: 90_000, pollMs: 100 });
    expect(ex.status).toBe('failed');
    expect(ex.targets[0]).toMatchObject({ status: 'failed', exitCode: 3, helperMode: 'api' });
    expect(ex.targets[0].error ?? null).toBeNull();
    expect(ex.targets[0].condition).toBe(true);
    expect(ex.targets[0].output).toEqual({ n: 7 });
    expect(ex.targets[0].replicaId).toBe(cluster.idOf(survivor));
    const logs = await allLogs(survivor, id);
    expect(stdoutOf(logs)).toEqual(lines(40));
    expect(logs.map((l) => l.seq)).toEqual(logs.map((_, i) => logs[0].seq + i));
    expect(logs.some((l) => l.stream === 'system' && /taken over; re-attached/.test(l.text))).toBe(
      true,
    );
    expect(fs.readFileSync(count, 'utf8')).toBe('run\n');
  });

  it('a re-delivered job never runs the script twice: while it runs, and after it ended', async () => {
    cluster = await startCluster({ replicas: 2 });
    const [a, b] = cluster.replicas;
    const serverId = await register(a, 'redelivery');
    const count = path.join(sshd.dir, `runs-${Date.now()}`);
    const id = await submit(a, {
      script: { type: 'bash', content: `echo run >> ${count}; sleep 2; echo done` },
      targets: { serverIds: [serverId] },
    });
    await runningOn(a, id);
    // BullMQ delivers at least once: the same execution arrives again, as another job.
    const connection = new Redis(cluster.redisUrl, { maxRetriesPerRequest: null });
    const queue = new Queue('executions', { connection, prefix: cluster.prefix });
    try {
      await queue.add('execution', { executionId: id }, { jobId: `again-${id}` });
      await queue.add('execution', { executionId: id }, { jobId: `and-again-${id}` });
      const ex = await b.waitForExecution(id, { timeoutMs: 60_000 });
      expect(ex.status).toBe('succeeded');
      await queue.add('execution', { executionId: id }, { jobId: `after-${id}` });
      // every copy is handled, and completes, without a second run
      const settled = async () => {
        const n = await queue.getJobCounts('completed', 'failed', 'wait', 'active', 'delayed');
        return n.completed === 3 && n.failed + n.wait + n.active + n.delayed === 0;
      };
      expect(await eventually(settled, 20_000)).toBe(true);
    } finally {
      await queue.close();
      connection.disconnect();
    }
    expect(fs.readFileSync(count, 'utf8')).toBe('run\n');
    const logs = await allLogs(b, id);
    expect(stdoutOf(logs)).toEqual(['done']);
  });

  it('cancel from another replica kills the remote tree; a websocket subscriber on another replica gets every event, gap-free, once', async () => {
    cluster = await startCluster({ replicas: 2 });
    const [a] = cluster.replicas;
    const serverId = await register(a, 'cancel');
    const n = 5000 + Math.floor(Math.random() * 4000);
    const id = await submit(a, {
      script: { type: 'bash', content: `echo started; sleep ${n} & sleep ${n + 1}` },
      targets: { serverIds: [serverId] },
    });
    const owner = cluster.byId(await runningOn(a, id))!;
    const other = cluster.replicas.find((r) => r !== owner)!;
    const sub = await subscribe(other, id);
    expect(await eventually(async () => (await alive(`sleep ${n + 1}`)).length > 0)).toBe(true);

    const c = await other.api('POST', `/v1/executions/${id}/cancel`);
    expect(c.status).toBe(202);
    const ex = await other.waitForExecution(id, { timeoutMs: 30_000 });
    expect(ex.status).toBe('cancelled');
    expect(ex.targets[0].status).toBe('cancelled');
    expect(
      await eventually(
        async () =>
          (await alive(`sleep ${n}`)).length + (await alive(`sleep ${n + 1}`)).length === 0,
      ),
    ).toBe(true);

    expect(await sub.ended()).toBe(true);
    sub.close();
    const seqs = sub.updates.map((u) => u.seq);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    const types = sub.updates.map((u) => u.type);
    expect(types).toContain('log');
    expect(types.slice(-3)).toEqual(['result', 'summary', 'end']);
    expect(sub.updates.some((u) => u.type === 'log' && u.text === 'started')).toBe(true);
    expect(sub.updates.find((u) => u.type === 'summary').status).toBe('cancelled');
    // a second cancel: it has ended
    expect((await owner.api('POST', `/v1/executions/${id}/cancel`)).status).toBe(409);
  });

  it('a 60-target job with concurrency 5 over 3 replicas never has more than 5 scripts alive at once (counted on the server)', async () => {
    cluster = await startCluster({ replicas: 3 });
    const [a, b, c] = cluster.replicas;
    const via = [a, b, c];
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) ids.push(await register(via[i % 3], `fleet-${i}`));
    const trace = path.join(sshd.dir, `trace-${Date.now()}`);
    const id = await submit(b, {
      script: {
        type: 'bash',
        content: `echo "start $(date +%s%N)" >> ${trace}; sleep 0.3; echo "end $(date +%s%N)" >> ${trace}`,
      },
      targets: { serverIds: ids },
      concurrency: 5,
    });
    const ex = await c.waitForExecution(id, { timeoutMs: 120_000, pollMs: 200 });
    expect(ex.status).toBe('succeeded');
    expect(ex.summary).toMatchObject({ total: 60, succeeded: 60 });
    const edges = fs
      .readFileSync(trace, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' '))
      .map(([what, ns]) => [BigInt(ns), what === 'start' ? 1 : -1] as const)
      .sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] - y[1]));
    expect(edges).toHaveLength(120);
    let now = 0;
    let max = 0;
    for (const [, d] of edges) max = Math.max(max, (now += d));
    expect(max).toBeLessThanOrEqual(5);
    expect(max).toBeGreaterThan(1); // it did run in parallel
  });

  it('SIGTERM on the replica running a job hands it over: it exits 0, another replica re-attaches, nothing is cancelled', async () => {
    cluster = await startCluster({ replicas: 2 });
    const [a] = cluster.replicas;
    const serverId = await register(a, 'handover');
    const id = await submit(a, {
      script: { type: 'bash', content: script(30, 0.1, 0) },
      targets: { serverIds: [serverId] },
    });
    const owner = cluster.byId(await runningOn(a, id))!;
    await sleep(500);
    const t0 = Date.now();
    await owner.stop('SIGTERM');
    expect(await owner.exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000); // no grace waited out
    const survivor = cluster.replicas.find((r) => r !== owner)!;
    const ex = await survivor.waitForExecution(id, { timeoutMs: 60_000 });
    expect(ex.status).toBe('succeeded');
    expect(ex.targets[0]).toMatchObject({ exitCode: 0, replicaId: cluster.idOf(survivor) });
    expect(stdoutOf(await allLogs(survivor, id))).toEqual(lines(30));
  });

  it('Idempotency-Key holds across replicas: the same key on two replicas is one execution', async () => {
    cluster = await startCluster({ replicas: 2 });
    const [a, b] = cluster.replicas;
    const serverId = await register(a, 'idem');
    const body = JSON.stringify({
      script: { type: 'bash', content: 'echo once' },
      targets: { serverIds: [serverId] },
    });
    const post = (svc: ServiceProcess) =>
      fetch(`${svc.base}/v1/jobs`, {
        method: 'POST',
        headers: { ...svc.headers, 'Idempotency-Key': 'same-key-on-both' },
        body,
      }).then((r) => r.json());
    const [x, y] = await Promise.all([post(a), post(b)]);
    expect(x.id).toBe(y.id);
    const list = (await a.api('GET', '/v1/executions?limit=50')).body;
    expect(list.items.filter((e: any) => e.id === x.id)).toHaveLength(1);
    expect(list.items).toHaveLength(1);
    expect((await b.waitForExecution(x.id, { timeoutMs: 30_000 })).status).toBe('succeeded');

    // the long-poll on either replica is woken by the end, wherever the job runs
    const slow = await submit(a, {
      script: { type: 'bash', content: 'sleep 1.5; echo late' },
      targets: { serverIds: [serverId] },
    });
    const t0 = Date.now();
    const [wa, wb] = await Promise.all(
      [a, b].map((svc) =>
        svc.api('GET', `/v1/executions/${slow}?wait=30`).then((r) => ({ r, ms: Date.now() - t0 })),
      ),
    );
    for (const w of [wa, wb]) {
      expect(w.r.status).toBe(200);
      expect(w.r.body.status).toBe('succeeded');
      expect(w.r.body.targets[0]).toMatchObject({ status: 'succeeded', exitCode: 0 });
      expect(w.ms).toBeLessThan(15_000); // woken by the end, not by the 30 s wait running out
    }
  });
});

describe('a server edited on one replica', () => {
  let cluster: Cluster;
  afterEach(async () => cluster?.stop());

  it('is edited for every replica at once: none keeps running jobs with what it had cached (endpoint, pooled connection)', async () => {
    cluster = await startCluster({ replicas: 2 });
    const [a, b] = cluster.replicas;
    const serverId = await register(a, 'edited');
    // Jobs until each replica has run one on the server (each keeps its endpoint and a
    // pooled connection to it).
    const runUntilBoth = async (expected: string) => {
      const ran = new Map<string, any>();
      for (let i = 0; i < 30 && ran.size < 2; i++) {
        const id = await submit(i % 2 ? b : a, {
          script: { type: 'bash', content: 'echo hi' },
          targets: { serverIds: [serverId] },
        });
        const ex = await a.waitForExecution(id, { timeoutMs: 30_000 });
        expect(ex.status).toBe(expected);
        ran.set(ex.targets[0].replicaId, ex.targets[0]);
      }
      expect(ran.size).toBe(2);
      return [...ran.values()];
    };
    await runUntilBoth('succeeded');
    // Another user, unknown to the sshd: from now on every job must fail to log in.
    const r = await a.api('PATCH', `/v1/servers/${serverId}`, { username: 'no-such-user-here' });
    expect(r.status).toBe(200);
    for (const t of await runUntilBoth('failed')) expect(t.error?.code).toBe('auth_failed');
  });
});

describe('Redis going away', () => {
  it('a Redis restart mid-run: readiness 503, the job runs on, submits and cancels still answer (no hang), work resumes once Redis is back', async () => {
    const redis = await privateRedis();
    const cluster = await startCluster({ replicas: 2, redisUrl: redis.url });
    try {
      const [a] = cluster.replicas;
      const serverId = await register(a, 'redis-restart');
      const id = await submit(a, {
        script: { type: 'bash', content: script(40, 0.1, 0) },
        targets: { serverIds: [serverId] },
      });
      await runningOn(a, id);
      const n = 7000 + Math.floor(Math.random() * 2000);
      const long = await submit(a, {
        script: { type: 'bash', content: `sleep ${n}` },
        targets: { serverIds: [serverId] },
      });
      const longOwner = cluster.byId(await runningOn(a, long))!;
      const other = cluster.replicas.find((r) => r !== longOwner)!;
      await redis.kill();
      expect(
        await eventually(
          async () => (await fetch(`${a.base}/health/ready`)).status === 503,
          10_000,
        ),
      ).toBe(true);
      // while Redis is away: a submit is accepted (it is stored; queued once Redis is back)
      let t0 = Date.now();
      const during = await submit(a, {
        script: { type: 'bash', content: 'echo during' },
        targets: { serverIds: [serverId] },
      });
      expect(Date.now() - t0).toBeLessThan(3000);
      // and a cancel on the replica that does not run the job reaches its owner anyway
      t0 = Date.now();
      expect((await other.api('POST', `/v1/executions/${long}/cancel`)).status).toBe(202);
      expect(Date.now() - t0).toBeLessThan(7000);
      expect(await eventually(async () => (await alive(`sleep ${n}`)).length === 0, 10_000)).toBe(
        true,
      );
      await redis.start();
      expect(
        await eventually(
          async () => (await fetch(`${a.base}/health/ready`)).status === 200,
          20_000,
        ),
      ).toBe(true);
      const ex = await a.waitForExecution(id, { timeoutMs: 60_000 });
      expect(ex.status).toBe('succeeded');
      expect(stdoutOf(await allLogs(a, id))).toEqual(lines(40));
      // and new work goes through the queue again
      const next = await submit(a, {
        script: { type: 'bash', content: 'echo after' },
        targets: { serverIds: [serverId] },
      });
      expect((await a.waitForExecution(next, { timeoutMs: 30_000 })).status).toBe('succeeded');
      const d = await a.waitForExecution(during, { timeoutMs: 60_000 });
      expect(d.status).toBe('succeeded');
      expect(stdoutOf(await allLogs(a, during))).toEqual(['during']);
      expect((await a.waitForExecution(long, { timeoutMs: 30_000 })).status).toBe('cancelled');
    } finally {
      await cluster.stop();
      await redis.stop();
    }
  });

  it('Redis unreachable at boot, or a bad REDIS_URL: exit 78 with one line naming REDIS_URL', async () => {
    for (const url of ['redis://127.0.0.1:1', 'http://not-redis']) {
      let stderr = '';
      const svc = await startServiceProcess({
        env: { NODE_ENV: 'test', REDIS_URL: url },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      svc.child.stderr!.on('data', (d) => (stderr += d));
      expect(await svc.exited).toBe(78);
      await svc.stop();
      const errLines = stderr.trim().split('\n');
      expect(errLines).toHaveLength(1);
      expect(errLines[0]).toMatch(/REDIS_URL/);
    }
  });
});

/** A process on PostgreSQL without Redis, with the secrets its peers share. */
const onPostgres = (url: string) => ({
  NODE_ENV: 'test',
  DATABASE_URL: url,
  CRONIUM_SECRETS_KEY: 'ab'.repeat(32),
  CRONIUM_JWT_SECRET: 'cd'.repeat(32),
});

describe('two processes on one PostgreSQL database, without Redis', () => {
  it('each drives its own executions: nothing is taken from the other, no event is lost or numbered twice', async () => {
    const db = await freshDatabase();
    const env = onPostgres(db.url);
    const p1 = await startServiceProcess({ env: { ...env, CRONIUM_REPLICA_ID: 'one' } });
    let p2: ServiceProcess | undefined;
    try {
      await p1.waitReady();
      const serverId = await register(p1, 'two-procs');
      const long = await submit(p1, {
        script: { type: 'bash', content: script(20, 0.1, 0) },
        targets: { serverIds: [serverId] },
      });
      await runningOn(p1, long);
      // a second process starts while the first one's job runs
      p2 = await startServiceProcess({ env: { ...env, CRONIUM_REPLICA_ID: 'two' } });
      await p2.waitReady();
      const jobs = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          submit(i % 2 ? p2! : p1, {
            script: { type: 'bash', content: `for i in 1 2 3; do echo "job ${i} $i"; done` },
            targets: { serverIds: [serverId] },
          }),
        ),
      );
      const lj = await p1.waitForExecution(long, { timeoutMs: 60_000 });
      expect(lj.status).toBe('succeeded');
      expect(lj.targets[0].replicaId).toBe('one');
      expect(stdoutOf(await allLogs(p2, long))).toEqual(lines(20));
      for (const [i, id] of jobs.entries()) {
        const svc = i % 2 ? p2 : p1;
        const ex = await svc.waitForExecution(id, { timeoutMs: 60_000 });
        expect(ex.status).toBe('succeeded');
        expect(ex.targets[0].replicaId).toBe(i % 2 ? 'two' : 'one');
        const logs = await allLogs(svc, id);
        expect(stdoutOf(logs)).toEqual([1, 2, 3].map((n) => `job ${i} ${n}`));
        expect(logs.map((l) => l.seq)).toEqual(logs.map((_, k) => logs[0].seq + k));
      }
    } finally {
      await p2?.stop('SIGKILL');
      await p1.stop('SIGKILL');
      await db.drop();
    }
  });
});

describe('PostgreSQL going away', () => {
  it('a database outage mid-run: readiness turns 503, submits get 503, the job rides it out and ends with every line once', async () => {
    const pg = await privatePostgres();
    const svc = await startServiceProcess({ env: onPostgres(pg.url) });
    try {
      await svc.waitReady();
      const serverId = await register(svc, 'pg-outage');
      const id = await submit(svc, {
        script: { type: 'bash', content: script(50, 0.1, 5) },
        targets: { serverIds: [serverId] },
      });
      await runningOn(svc, id);
      await sleep(500);
      pg.stop();
      expect(
        await eventually(async () => (await fetch(`${svc.base}/health/ready`)).status === 503),
      ).toBe(true);
      const refused = await svc.api('POST', '/v1/jobs', {
        script: { type: 'bash', content: 'echo never' },
        targets: { serverIds: [serverId] },
      });
      expect(refused.status).toBe(503);
      expect(refused.body).toMatchObject({ statusCode: 503, error: 'Service Unavailable' });
      await sleep(3000); // the script goes on meanwhile, and ends
      pg.start();
      expect(
        await eventually(
          async () => (await fetch(`${svc.base}/health/ready`)).status === 200,
          20_000,
        ),
      ).toBe(true);
      const ex = await svc.waitForExecution(id, { timeoutMs: 90_000, pollMs: 200 });
      expect(ex.targets[0]).toMatchObject({ status: 'failed', exitCode: 5 });
      expect(ex.targets[0].error ?? null).toBeNull();
      const logs = await allLogs(svc, id);
      expect(stdoutOf(logs)).toEqual(lines(50));
      expect(logs.map((l) => l.seq)).toEqual(logs.map((_, i) => i + 1));
    } finally {
      await svc.stop('SIGKILL');
      pg.destroy();
    }
  });
});
