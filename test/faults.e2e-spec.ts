/**
 * Faults a user meets in production, on real sshd processes: sshd killed, a frozen host,
 * a port that accepts and never speaks, a network that drops, stalls or crawls (a TCP
 * proxy in between), and the service itself killed. Each target ends within the bound the
 * product promises, with the right status and code, leaves no remote process behind, and
 * the pool serves the next job.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  logsOf,
  registerServer,
  runDirsIn,
  startApp,
  TEST_TOKEN,
  TestApp,
  waitForExecution,
} from './support/app';
import { alive, eventually } from './support/processes';
import {
  ServiceProcess,
  SERVICE_MAIN,
  startServiceProcess,
  waitForLogLine,
} from './support/service-process';
import { SshdInstance, startSshd } from './support/sshd';
import { startTcpProxy, TcpProxy } from './support/tcp-proxy';

const TEST_YAML = path.resolve(__dirname, '../config/test.yaml');
/** config/test.yaml: executor.killGraceSeconds. */
const GRACE_S = 2;
/** config/test.yaml: runner.reattachBackoff.maxDelayMs. */
const REATTACH_MAX_PAUSE_MS = 1000;
/** config/test.yaml: ssh.connectRetry.attempts. */
const CONNECT_ATTEMPTS = 2;
const LEASE_S = 10;
const READY_TIMEOUT_MS = 3000;
/** What every bound below allows on top of the product's own figure. */
const SLACK_MS = 2000;

/** The service under test: a short lease (and heartbeat) so lease-long faults fit a test. */
const APP_ENV = {
  CRONIUM__RUNNER__LEASE_SECONDS: String(LEASE_S),
  CRONIUM__RUNNER__HEARTBEAT_SECONDS: '1',
  CRONIUM__SSH__READY_TIMEOUT_MS: String(READY_TIMEOUT_MS),
};

const uniq = () => 10000 + Math.floor(Math.random() * 50000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const lines = (logs: any[], stream: string) =>
  logs.filter((l) => l.stream === stream).map((l) => l.text);

async function submit(t: TestApp, serverId: string, body: Record<string, unknown>) {
  const res = await t
    .http()
    .post('/v1/jobs')
    .set(t.auth)
    .send({ targets: { serverIds: [serverId] }, ...body });
  expect(res.status).toBe(202);
  return res.body.id as string;
}

async function waitForLine(t: TestApp, id: string, text: string) {
  const seen = await eventually(async () => (await logsOf(t, id)).some((l) => l.text === text));
  expect(seen).toBe(true);
}

/** The pool serves the next job on that server. */
async function nextJobSucceeds(t: TestApp, serverId: string) {
  const ex = await waitForExecution(
    t,
    await submit(t, serverId, { script: { type: 'bash', content: 'echo back' } }),
  );
  expect({ ...ex.targets[0], logs: await logsOf(t, ex.id) }).toMatchObject({
    status: 'succeeded',
    exitCode: 0,
  });
}

/** Logged seqs are 1..n: nothing lost, nothing twice. */
function expectGapFree(logs: any[]) {
  expect(logs.map((l) => l.seq)).toEqual(logs.map((_, i) => i + 1));
}

describe('faults on a real sshd', () => {
  let sshd: SshdInstance;
  let t: TestApp;
  let serverId: string;
  let baseDir: string;

  beforeAll(async () => {
    sshd = await startSshd();
    t = await startApp(APP_ENV);
    baseDir = `${sshd.dir}/base`;
    serverId = await registerServer(t, sshd, { baseDir });
  });
  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
  });

  it('sshd killed mid-run and back within the lease: re-attached one backoff pause after it is back, real exit code, every line once', async () => {
    const n = uniq();
    const id = await submit(t, serverId, {
      script: {
        type: 'bash',
        content: `sleep ${n} & for i in $(seq 1 20); do echo "tick $i"; sleep 0.2; done; exit 5`,
      },
    });
    await waitForLine(t, id, 'tick 3');
    await sshd.crash();
    const crashedAt = Date.now();
    await sleep(1500);
    await sshd.restart();
    const downMs = Date.now() - crashedAt;
    const ex = await waitForExecution(t, id);
    expect(ex.targets[0]).toMatchObject({ status: 'failed', exitCode: 5 });
    expect(ex.targets[0].error).toBeUndefined();
    const logs = await logsOf(t, id);
    expect(lines(logs, 'stdout')).toEqual(Array.from({ length: 20 }, (_, i) => `tick ${i + 1}`));
    expectGapFree(logs);
    const back = logs
      .map((l) => /^connection lost; re-attached after (\d+) ms$/.exec(l.text))
      .find(Boolean);
    expect(back).toBeTruthy();
    // Re-attach attempts are at most one backoff pause apart, and the one under way when
    // sshd is back may take its connect attempts to their readyTimeout.
    const attemptMs = CONNECT_ATTEMPTS * READY_TIMEOUT_MS;
    expect(Number(back![1])).toBeLessThan(downMs + REATTACH_MAX_PAUSE_MS + attemptMs + SLACK_MS);
    expect(await alive(`sleep ${n}`)).toEqual([]);
    await nextJobSucceeds(t, serverId);
  });

  it('sshd killed mid-run and gone for the lease: connection_lost once the lease is over, the runner kills the tree, and a restarted sshd serves the next job', async () => {
    const n = uniq();
    const id = await submit(t, serverId, {
      script: { type: 'bash', content: `echo started; sleep ${n}` },
    });
    await waitForLine(t, id, 'started');
    await sshd.crash();
    const crashedAt = Date.now();
    try {
      const ex = await waitForExecution(t, id);
      const elapsed = Date.now() - crashedAt;
      expect(ex.targets[0]).toMatchObject({
        status: 'failed',
        error: { code: 'connection_lost', message: expect.any(String) },
      });
      // Re-attached for a whole lease, and not for longer.
      expect(elapsed).toBeGreaterThanOrEqual(LEASE_S * 1000 - 500);
      expect(elapsed).toBeLessThan(LEASE_S * 1000 + SLACK_MS);
      // The runner's lease (from the last heartbeat) kills the tree: TERM, KILL after the grace.
      expect(
        await eventually(async () => (await alive(`sleep ${n}`)).length === 0, 2000 + GRACE_S),
      ).toBe(true);
    } finally {
      await sshd.restart();
    }
    await nextJobSucceeds(t, serverId);
  });

  it('a frozen host (sshd SIGSTOPped) and a timeout: timed_out within timeout + grace + 2 s; once thawed nothing of the job is left', async () => {
    const n = uniq();
    const timeoutSeconds = 8;
    const t0 = Date.now();
    const id = await submit(t, serverId, {
      timeoutSeconds,
      script: { type: 'bash', content: `echo started; sleep ${n}; echo never` },
    });
    await waitForLine(t, id, 'started');
    await sshd.freeze();
    try {
      const ex = await waitForExecution(t, id);
      const elapsed = Date.now() - t0;
      expect(elapsed).toBeLessThan((timeoutSeconds + GRACE_S) * 1000 + SLACK_MS);
      expect(ex.targets[0]).toMatchObject({
        status: 'timed_out',
        error: { code: 'connection_lost', message: expect.stringMatching(/did not confirm/) },
      });
      expect(lines(await logsOf(t, id), 'stdout')).toEqual(['started']);
    } finally {
      await sshd.thaw();
    }
    // The runner enforced its deadline on its own; once the host answers, the service
    // attaches, takes the trailer and acks, which removes the run directory.
    expect(await eventually(async () => (await alive(`sleep ${n}`)).length === 0, 5000)).toBe(true);
    expect(await eventually(async () => runDirsIn(baseDir).length === 0, 15000)).toBe(true);
    await nextJobSucceeds(t, serverId);
  });

  it('a cancel on a frozen host: cancelled within grace + 2 s; once thawed the cancel is delivered and the tree killed', async () => {
    const n = uniq();
    const id = await submit(t, serverId, {
      script: { type: 'bash', content: `echo started; sleep ${n}` },
    });
    await waitForLine(t, id, 'started');
    await sshd.freeze();
    try {
      const t0 = Date.now();
      const c = await t.http().post(`/v1/executions/${id}/cancel`).set(t.auth);
      expect(c.status).toBe(202);
      const ex = await waitForExecution(t, id);
      expect(Date.now() - t0).toBeLessThan(GRACE_S * 1000 + SLACK_MS);
      expect(ex.status).toBe('cancelled');
      expect(ex.targets[0]).toMatchObject({
        status: 'cancelled',
        error: { code: 'connection_lost', message: expect.stringMatching(/did not confirm/) },
      });
      expect(await alive(`sleep ${n}`)).toHaveLength(1); // nobody could tell the runner
    } finally {
      await sshd.thaw();
    }
    // Background retries (one backoff pause apart, each a connect of up to readyTimeout per
    // attempt) reach the thawed host; the runner kills within the grace.
    const within = CONNECT_ATTEMPTS * READY_TIMEOUT_MS + REATTACH_MAX_PAUSE_MS + GRACE_S * 1000;
    expect(
      await eventually(async () => (await alive(`sleep ${n}`)).length === 0, within + SLACK_MS),
    ).toBe(true);
    await nextJobSucceeds(t, serverId);
  });

  it('a port that accepts TCP and never speaks: connect_failed within connect attempts x readyTimeout', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const port = (silent.address() as net.AddressInfo).port;
      const mute = await registerServer(t, sshd, { port, baseDir });
      const t0 = Date.now();
      const ex = await waitForExecution(
        t,
        await submit(t, mute, { script: { type: 'bash', content: 'echo hi' } }),
      );
      expect(Date.now() - t0).toBeLessThan(CONNECT_ATTEMPTS * READY_TIMEOUT_MS + SLACK_MS);
      expect(ex.targets[0]).toMatchObject({
        status: 'failed',
        error: { code: 'connect_failed', message: expect.any(String) },
      });
    } finally {
      silent.close();
    }
    await nextJobSucceeds(t, serverId);
  });
});

describe('a network that drops, stalls or crawls (TCP proxy to a real sshd)', () => {
  let sshd: SshdInstance;
  let proxy: TcpProxy;
  let t: TestApp;
  let serverId: string;
  const KEEPALIVE_MS = 1000;
  const KEEPALIVE_COUNT = 2;

  beforeAll(async () => {
    sshd = await startSshd();
    proxy = await startTcpProxy(sshd);
    t = await startApp({
      ...APP_ENV,
      CRONIUM__SSH__KEEPALIVE_INTERVAL_MS: String(KEEPALIVE_MS),
      CRONIUM__SSH__KEEPALIVE_COUNT_MAX: String(KEEPALIVE_COUNT),
    });
    serverId = await registerServer(t, { ...sshd, port: proxy.port }, { baseDir: `${sshd.dir}/b` });
  });
  afterAll(async () => {
    await t?.close();
    await proxy?.close();
    await sshd?.stop();
  });

  it('dropped mid-stream (twice): re-attached, real exit code, every line exactly once', async () => {
    const pad = 'x'.repeat(200);
    const id = await submit(t, serverId, {
      script: {
        type: 'bash',
        content: `for i in $(seq 1 600); do echo "line $i ${pad}"; [ $((i % 40)) = 0 ] && sleep 0.1; done; exit 7`,
      },
    });
    await waitForLine(t, id, `line 80 ${pad}`);
    proxy.drop();
    await waitForLine(t, id, `line 300 ${pad}`);
    proxy.drop();
    const ex = await waitForExecution(t, id);
    expect(ex.targets[0]).toMatchObject({ status: 'failed', exitCode: 7 });
    expect(ex.targets[0].error).toBeUndefined();
    const logs = await logsOf(t, id);
    expect(lines(logs, 'stdout')).toEqual(
      Array.from({ length: 600 }, (_, i) => `line ${i + 1} ${pad}`),
    );
    expectGapFree(logs);
    expect(logs.filter((l) => /^connection lost; re-attached/.test(l.text)).length).toBe(2);
    await nextJobSucceeds(t, serverId);
  });

  it("dropped while python's API-mode helpers talk through the run's Unix socket: the socket is forwarded again and the calls go on", async () => {
    const id = await submit(t, serverId, {
      helperMode: 'api',
      input: { n: 3 },
      script: {
        type: 'python',
        content: [
          'import os, time',
          'assert os.environ["CRONIUM_API_SOCKET"].endswith(".sock")',
          'print("before", cronium.input()["n"], flush=True)',
          'time.sleep(1.5)',
          // after the drop: the same socket path, forwarded again on the new connection
          'cronium.setVariable("after-drop", {"ok": True})',
          'cronium.output({"n": cronium.input()["n"] + 1})',
          'print("after", flush=True)',
        ].join('\n'),
      },
    });
    await waitForLine(t, id, 'before 3');
    proxy.drop();
    const ex = await waitForExecution(t, id);
    expect(ex.targets[0]).toMatchObject({ status: 'succeeded', exitCode: 0, output: { n: 4 } });
    const logs = await logsOf(t, id);
    expect(lines(logs, 'stdout')).toEqual(['before 3', 'after']);
    expect(logs.some((l) => /^connection lost; re-attached/.test(l.text))).toBe(true);
    const v = await t.http().get('/v1/variables/default/after-drop').set(t.auth);
    expect(v.body.value).toEqual({ ok: true });
  });

  it('stalled longer than the keepalive: the dead connection is noticed, re-attached, nothing lost', async () => {
    const id = await submit(t, serverId, {
      script: {
        type: 'bash',
        content: 'for i in $(seq 1 30); do echo "tick $i"; sleep 0.2; done; echo bye >&2; exit 2',
      },
    });
    await waitForLine(t, id, 'tick 3');
    const stalledAt = Date.now();
    proxy.stall();
    const ex = await waitForExecution(t, id);
    expect(ex.targets[0]).toMatchObject({ status: 'failed', exitCode: 2 });
    expect(ex.targets[0].error).toBeUndefined();
    const logs = await logsOf(t, id);
    expect(lines(logs, 'stdout')).toEqual(Array.from({ length: 30 }, (_, i) => `tick ${i + 1}`));
    expect(lines(logs, 'stderr')).toEqual(['bye']);
    expectGapFree(logs);
    const back = logs.find((l) => /^connection lost; re-attached after \d+ ms$/.test(l.text));
    expect(back).toBeTruthy();
    // ssh2 gives up after keepaliveCountMax unanswered keepalives, one interval apart.
    expect(Date.parse(back.ts) - stalledAt).toBeLessThan(
      KEEPALIVE_MS * (KEEPALIVE_COUNT + 1) + REATTACH_MAX_PAUSE_MS + SLACK_MS,
    );
    proxy.drop(); // the stalled sockets the service gave up on
    await nextJobSucceeds(t, serverId);
  });

  it('slow (every chunk delayed): still the exact output and exit code', async () => {
    proxy.slow(40);
    try {
      const ex = await waitForExecution(
        t,
        await submit(t, serverId, {
          script: {
            type: 'bash',
            content: 'for i in $(seq 1 50); do echo "row $i"; done; printf tail; exit 0',
          },
        }),
      );
      expect(ex.targets[0]).toMatchObject({ status: 'succeeded', exitCode: 0 });
      const logs = await logsOf(t, ex.id);
      expect(lines(logs, 'stdout')).toEqual([
        ...Array.from({ length: 50 }, (_, i) => `row ${i + 1}`),
        'tail',
      ]);
      expectGapFree(logs);
    } finally {
      proxy.slow(0);
    }
    await nextJobSucceeds(t, serverId);
  });
});

describe('the service killed mid-run (real process, real sshd)', () => {
  let sshd: SshdInstance;
  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(async () => sshd?.stop());

  it('after a restart the execution is re-attached and ends with its real result; no remote process is left', async () => {
    expect(fs.existsSync(SERVICE_MAIN)).toBe(true); // built first (npm run build)
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-faults-'));
    const start = () =>
      startServiceProcess({
        dataDir,
        token: TEST_TOKEN,
        env: { NODE_ENV: 'test', CRONIUM_CONFIG: TEST_YAML },
        stdio: 'ignore',
      });
    const baseDir = `${sshd.dir}/base`;
    const n = uniq();
    let first: ServiceProcess | null = await start();
    let second: ServiceProcess | null = null;
    try {
      await first.waitReady();
      const srv = await first.registerServer(sshd, { name: 'faults-srv', baseDir });
      const job = await first.api('POST', '/v1/jobs', {
        script: {
          type: 'bash',
          content: `sleep ${n} & for i in $(seq 1 16); do echo "tick $i"; sleep 0.25; done; exit 4`,
        },
        targets: { serverIds: [srv.body.id] },
      });
      expect(job.status).toBe(202);
      await waitForLogLine(first, job.body.id, 'tick 3');
      await first.stop('SIGKILL');
      first = null;

      second = await start();
      await second.waitReady();
      const done = await second.waitForExecution(job.body.id, { timeoutMs: 60000 });
      expect(done.targets[0]).toMatchObject({ status: 'failed', exitCode: 4 });
      expect(done.targets[0].error).toBeUndefined();
      const logs = (await second.api('GET', `/v1/executions/${job.body.id}/logs`)).body.entries;
      expect(lines(logs, 'stdout')).toEqual(Array.from({ length: 16 }, (_, i) => `tick ${i + 1}`));
      expectGapFree(logs);
      expect(await alive(`sleep ${n}`)).toEqual([]);
      expect(await eventually(async () => runDirsIn(baseDir).length === 0, 5000)).toBe(true);
      const next = await second.api('POST', '/v1/jobs', {
        script: { type: 'bash', content: 'echo back' },
        targets: { serverIds: [srv.body.id] },
      });
      const after = await second.waitForExecution(next.body.id, { timeoutMs: 30000 });
      expect(after.targets[0]).toMatchObject({ status: 'succeeded', exitCode: 0 });
    } finally {
      await first?.stop('SIGKILL');
      await second?.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('a hand-over on a frozen host (real process, real sshd)', () => {
  let sshd: SshdInstance;
  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(async () => {
    await sshd?.thaw().catch(() => undefined);
    await sshd?.stop();
  });

  it('SIGTERM with shutdown.handover does not wait for the keepalive; thawed and started again, the run is re-attached', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-handover-'));
    const start = () =>
      startServiceProcess({
        dataDir,
        token: TEST_TOKEN,
        env: {
          NODE_ENV: 'test',
          CRONIUM_CONFIG: TEST_YAML,
          CRONIUM__SHUTDOWN__HANDOVER: 'true',
          // the keepalive alone would take 30 s to notice the frozen host
          CRONIUM__SSH__KEEPALIVE_INTERVAL_MS: '10000',
          CRONIUM__SSH__KEEPALIVE_COUNT_MAX: '3',
        },
        stdio: 'ignore',
      });
    let first: ServiceProcess | null = await start();
    let second: ServiceProcess | null = null;
    try {
      await first.waitReady();
      const srv = await first.registerServer(sshd, { name: 'frozen', baseDir: `${sshd.dir}/h` });
      const job = await first.api('POST', '/v1/jobs', {
        script: {
          type: 'bash',
          content: 'for i in $(seq 1 20); do echo "tick $i"; sleep 0.25; done; exit 6',
        },
        targets: { serverIds: [srv.body.id] },
      });
      expect(job.status).toBe(202);
      await waitForLogLine(first, job.body.id, 'tick 2');
      await sshd.freeze();
      const t0 = Date.now();
      await first.stop('SIGTERM', 30_000);
      const took = Date.now() - t0;
      expect(await first.exited).toBe(0);
      first = null;
      // the channel close gets no answer: the connection is dropped after a second
      expect(took).toBeLessThan(8000);

      await sshd.thaw();
      second = await start();
      await second.waitReady();
      const done = await second.waitForExecution(job.body.id, { timeoutMs: 60000 });
      expect(done.targets[0]).toMatchObject({ status: 'failed', exitCode: 6 });
      const logs = (await second.api('GET', `/v1/executions/${job.body.id}/logs`)).body.entries;
      expect(lines(logs, 'stdout')).toEqual(Array.from({ length: 20 }, (_, i) => `tick ${i + 1}`));
    } finally {
      await first?.stop('SIGKILL');
      await second?.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
