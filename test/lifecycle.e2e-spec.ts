import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import {
  logsOf,
  registerServer,
  startApp,
  TEST_TOKEN,
  TestApp,
  waitForExecution,
} from './support/app';
import { alive } from './support/processes';
import {
  SERVICE_MAIN,
  ServiceProcess,
  startServiceProcess,
  waitForLogLine,
} from './support/service-process';
import { SshdInstance, startSshd } from './support/sshd';

/**
 * Registers the sshd (host key trusted on first use) and starts a job that runs
 * `sleep n & sleep n+1`; resolves once the second sleep is running.
 */
async function startSleepJob(svc: ServiceProcess, sshd: SshdInstance, name: string) {
  const srv = await svc.registerServer(sshd, {
    name,
    baseDir: `${sshd.dir}/base`,
    hostKey: undefined,
  });
  const n = 4000 + Math.floor(Math.random() * 4000);
  const job = await svc.api('POST', '/v1/jobs', {
    script: { type: 'bash', content: `sleep ${n} & sleep ${n + 1}` },
    targets: { serverIds: [srv.body.id] },
  });
  for (let i = 0; (await alive(`sleep ${n + 1}`)).length === 0; i++) {
    if (i > 200) throw new Error('script never started');
    await new Promise((r) => setTimeout(r, 50));
  }
  return { serverId: srv.body.id as string, job: job.body, n };
}

/** The service as a process on a data dir of the test's (kept across its restarts). */
const serviceOn = (dataDir: string, env: Record<string, string> = {}) =>
  startServiceProcess({
    dataDir,
    token: TEST_TOKEN,
    env: { NODE_ENV: 'test', ...env },
    stdio: 'ignore',
  });

describe('service lifecycle (real process, real sshd)', () => {
  let sshd: SshdInstance;
  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(async () => sshd?.stop());

  it('a service killed and not restarted: after the lease the runner kills the tree; a later start closes it as orchestrator_restarted', async () => {
    expect(fs.existsSync(SERVICE_MAIN)).toBe(true); // npm test builds dist/ first
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-restart-'));
    const svc = await startServiceProcess({
      dataDir,
      token: TEST_TOKEN,
      env: { NODE_ENV: 'test', CRONIUM__RUNNER__LEASE_SECONDS: '2' },
      stdio: 'ignore',
    });
    try {
      await svc.waitReady();
      const { job, n } = await startSleepJob(svc, sshd, 'restart-srv');
      await svc.stop('SIGKILL');

      // Nobody is attached any more: once the lease runs out the runner kills the tree.
      for (
        let i = 0;
        (await alive(`sleep ${n}`)).length + (await alive(`sleep ${n + 1}`)).length > 0;
        i++
      ) {
        if (i > 100) throw new Error('remote processes survived the orchestrator');
        await new Promise((r) => setTimeout(r, 100));
      }

      const t = await startApp({ CRONIUM_DATA_DIR: dataDir });
      try {
        // it takes the execution over, finds the run ended by its lease (or gone)
        const ex = { body: await waitForExecution(t, job.id) };
        expect(ex.body.status).toBe('failed');
        expect(ex.body.finishedAt).toEqual(expect.any(String));
        expect(ex.body.targets[0].status).toBe('failed');
        expect(ex.body.targets[0].error.code).toBe('orchestrator_restarted');
        const logs = await logsOf(t, job.id);
        expect(logs.map((l) => l.seq)).toEqual(logs.map((_, i) => i + 1));
      } finally {
        await t.close();
      }
    } finally {
      await svc.stop('SIGKILL');
    }
  });
  it('a service killed after the runner had the payload but before `running` was stored: the next start follows the run, which ran once, with every line once', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-payload-first-'));
    const marker = path.join(sshd.dir, `ran-${Date.now()}`);
    const start = () => serviceOn(dataDir);
    const first = await start();
    let second: ServiceProcess | null = null;
    try {
      await first.waitReady();
      const srv = await first.registerServer(sshd, { name: 'payload-first-srv' });
      const job = await first.api('POST', '/v1/jobs', {
        script: {
          type: 'bash',
          content: `echo ran >> ${marker}; for i in $(seq 1 12); do echo "tick $i"; sleep 0.25; done; exit 3`,
        },
        helperMode: 'bundled',
        targets: { serverIds: [srv.body.id] },
      });
      await waitForLogLine(first, job.body.id, 'tick 3');
      await first.stop('SIGKILL');
      // As if it had died before its write of `running`: the row still says queued.
      const db = new Database(path.join(dataDir, 'cronium.db'));
      db.prepare(
        `UPDATE execution_targets SET status = 'queued', "startedAt" = NULL, "replicaId" = NULL WHERE "executionId" = ?`,
      ).run(job.body.id);
      db.close();

      second = await start();
      await second.waitReady();
      const done = await second.waitForExecution(job.body.id, { timeoutMs: 60000 });
      expect(done.targets[0]).toMatchObject({ status: 'failed', exitCode: 3 });
      expect(done.targets[0].error).toBeUndefined();
      expect(fs.readFileSync(marker, 'utf8')).toBe('ran\n'); // started once, not twice
      const logs = (await second.api('GET', `/v1/executions/${job.body.id}/logs`)).body.entries;
      expect(logs.filter((e: any) => e.stream === 'stdout').map((e: any) => e.text)).toEqual(
        Array.from({ length: 12 }, (_, i) => `tick ${i + 1}`),
      );
      expect(
        logs.some((e: any) => e.text === 'the run had already started here; following it'),
      ).toBe(true);
    } finally {
      await first.stop('SIGKILL');
      await second?.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('a service killed mid-run and started again re-attaches: the job ends with its real exit code and every line once; API-mode helpers keep working', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-reattach-'));
    const start = () => serviceOn(dataDir);
    const first = await start();
    let second: ServiceProcess | null = null;
    try {
      await first.waitReady();
      const srv = await first.registerServer(sshd, { name: 'reattach-srv' });
      const job = await first.api('POST', '/v1/jobs', {
        script: {
          type: 'bash',
          content: [
            'cronium.setCondition true',
            'for i in $(seq 1 12); do echo "tick $i"; sleep 0.25; done',
            // after the take-over: the same endpoint and token, served by the new process
            'echo "input=$(cronium.input)"',
            'cronium.output \'{"tick":12}\'',
            'echo bye >&2; exit 4',
          ].join('\n'),
        },
        input: { n: 7 },
        helperMode: 'api',
        targets: { serverIds: [srv.body.id] },
      });
      expect(job.status).toBe(202);
      // python's helpers speak through the run's Unix socket: forwarded again too
      const py = await first.api('POST', '/v1/jobs', {
        script: {
          type: 'python',
          content: [
            'import json, sys, time',
            'cronium.setCondition(True)',
            'for i in range(12):',
            '    print("tick %d" % (i + 1), flush=True)',
            '    time.sleep(0.25)',
            'print("input=" + json.dumps(cronium.input()), flush=True)',
            'cronium.output({"py": 12})',
            'sys.exit(5)',
          ].join('\n'),
        },
        input: 'p',
        helperMode: 'api',
        targets: { serverIds: [srv.body.id] },
      });
      expect(py.status).toBe(202);
      await waitForLogLine(first, job.body.id, 'tick 3');
      await waitForLogLine(first, py.body.id, 'tick 3');
      await first.stop('SIGKILL');

      second = await start();
      await second.waitReady();
      const done = await second.waitForExecution(job.body.id, { timeoutMs: 60000 });
      expect(done.status).toBe('failed');
      expect(done.targets[0]).toMatchObject({ status: 'failed', exitCode: 4, helperMode: 'api' });
      expect(done.targets[0].error).toBeUndefined();
      // set before the kill (kept), and after it (through the re-forwarded tunnel)
      expect(done.targets[0].condition).toBe(true);
      expect(done.targets[0].output).toEqual({ tick: 12 });
      const logs = (await second.api('GET', `/v1/executions/${job.body.id}/logs`)).body.entries;
      const stdout = logs.filter((e: any) => e.stream === 'stdout').map((e: any) => e.text);
      expect(stdout).toEqual([
        ...Array.from({ length: 12 }, (_, i) => `tick ${i + 1}`),
        'input={"n":7}',
      ]);
      expect(logs.filter((e: any) => e.stream === 'stderr').map((e: any) => e.text)).toEqual([
        'bye',
      ]);
      expect(logs.map((e: any) => e.seq)).toEqual(logs.map((_: unknown, i: number) => i + 1));
      expect(logs.some((e: any) => e.text === 'taken over; re-attached to the run')).toBe(true);

      const pyDone = await second.waitForExecution(py.body.id, { timeoutMs: 60000 });
      expect(pyDone.targets[0]).toMatchObject({
        status: 'failed',
        exitCode: 5,
        helperMode: 'api',
        condition: true,
        output: { py: 12 },
      });
      const pyLogs = (await second.api('GET', `/v1/executions/${py.body.id}/logs`)).body.entries;
      expect(pyLogs.filter((e: any) => e.stream === 'stdout').map((e: any) => e.text)).toEqual([
        ...Array.from({ length: 12 }, (_, i) => `tick ${i + 1}`),
        'input="p"',
      ]);
    } finally {
      await first.stop('SIGKILL');
      await second?.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses a second process on the same SQLite file at boot; the first one runs on untouched', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-twice-'));
    const first = await startServiceProcess({
      dataDir,
      token: TEST_TOKEN,
      env: { NODE_ENV: 'test' },
      stdio: 'ignore',
    });
    try {
      await first.waitReady();
      const srv = await first.registerServer(sshd, { name: 'twice-srv' });
      const job = await first.api('POST', '/v1/jobs', {
        script: { type: 'bash', content: 'echo one; sleep 2; echo two' },
        targets: { serverIds: [srv.body.id] },
      });
      expect(job.status).toBe(202);

      const second = await startServiceProcess({
        dataDir,
        token: TEST_TOKEN,
        env: { NODE_ENV: 'test' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      second.child.stderr!.on('data', (d) => (stderr += d));
      expect(await second.exited).toBe(78);
      expect(stderr).toMatch(/cronium\.db is in use by another process \(pid \d+/);
      expect(stderr).toContain('DATABASE_URL=postgres://');

      const done = await first.waitForExecution(job.body.id);
      expect(done.status).toBe('succeeded');
      const logs = await first.api('GET', `/v1/executions/${job.body.id}/logs`);
      const stdout = logs.body.entries.filter((e: any) => e.stream === 'stdout');
      expect(stdout.map((e: any) => e.text)).toEqual(['one', 'two']);
      expect(logs.body.entries.map((e: any) => e.seq)).toEqual(
        logs.body.entries.map((_: unknown, i: number) => i + 1),
      );

      // A lock left by a process that died (kill -9) does not block the next start.
      await first.stop('SIGKILL');
      expect(fs.existsSync(path.join(dataDir, 'cronium.db.lock'))).toBe(true);
      const next = await startServiceProcess({
        dataDir,
        token: TEST_TOKEN,
        env: { NODE_ENV: 'test' },
        stdio: 'ignore',
      });
      try {
        await next.waitReady();
        expect((await next.api('GET', `/v1/executions/${job.body.id}`)).body.status).toBe(
          'succeeded',
        );
      } finally {
        await next.stop();
      }
      expect(fs.existsSync(path.join(dataDir, 'cronium.db.lock'))).toBe(false);
    } finally {
      await first.stop('SIGKILL');
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('graceful shutdown (real process, real sshd)', () => {
  let sshd: SshdInstance;
  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(async () => sshd?.stop());

  it('on SIGTERM refuses new jobs, turns unready, cancels what outlives the grace, kills remote trees, exits 0', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-term-'));
    const svc = await startServiceProcess({
      dataDir,
      token: TEST_TOKEN,
      env: { CRONIUM_SHUTDOWN_GRACE_SECONDS: '2', NODE_ENV: 'test' },
      stdio: 'ignore',
    });
    try {
      await svc.waitReady();
      const { serverId, job, n } = await startSleepJob(svc, sshd, 'term-srv');
      svc.child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 300));
      expect((await fetch(`${svc.base}/health/ready`)).status).toBe(503);
      const refused = await svc.api('POST', '/v1/jobs', {
        script: { type: 'bash', content: 'true' },
        targets: { serverIds: [serverId] },
      });
      expect(refused.status).toBe(503);
      expect(await svc.exited).toBe(0);
      expect(await alive(`sleep ${n}`)).toEqual([]);
      expect(await alive(`sleep ${n + 1}`)).toEqual([]);

      const t = await startApp({ CRONIUM_DATA_DIR: dataDir });
      try {
        const ex = await t.http().get(`/v1/executions/${job.id}`).set(t.auth);
        expect(ex.body.status).toBe('cancelled');
        expect(ex.body.targets[0].status).toBe('cancelled');
      } finally {
        await t.close();
      }
    } finally {
      await svc.stop('SIGKILL');
    }
  });

  it('with shutdown.handover, SIGTERM hands the run over instead: it runs on remotely, and the next start re-attaches', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-handover-'));
    const start = () => serviceOn(dataDir, { CRONIUM__SHUTDOWN__HANDOVER: 'true' });
    const first = await start();
    let second: ServiceProcess | null = null;
    try {
      await first.waitReady();
      const srv = await first.registerServer(sshd, { name: 'handover-srv', hostKey: undefined });
      const job = await first.api('POST', '/v1/jobs', {
        script: {
          type: 'bash',
          content: 'for i in $(seq 1 16); do echo "tick $i"; sleep 0.25; done; exit 6',
        },
        targets: { serverIds: [srv.body.id] },
      });
      await waitForLogLine(first, job.body.id, 'tick 2');
      const t0 = Date.now();
      first.child.kill('SIGTERM');
      expect(await first.exited).toBe(0);
      expect(Date.now() - t0).toBeLessThan(5000); // no grace waited out
      expect((await alive('seq 1 16')).length + (await alive('sleep 0.25')).length).toBeGreaterThan(
        0,
      );

      second = await start();
      await second.waitReady();
      const done = await second.waitForExecution(job.body.id, { timeoutMs: 60000 });
      expect(done.targets[0]).toMatchObject({ status: 'failed', exitCode: 6 });
      expect(done.targets[0].error).toBeUndefined();
      const logs = (await second.api('GET', `/v1/executions/${job.body.id}/logs`)).body.entries;
      expect(logs.filter((e: any) => e.stream === 'stdout').map((e: any) => e.text)).toEqual(
        Array.from({ length: 16 }, (_, i) => `tick ${i + 1}`),
      );
      expect(logs.map((e: any) => e.seq)).toEqual(logs.map((_: unknown, i: number) => i + 1));
    } finally {
      await first.stop('SIGKILL');
      await second?.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('bounded output (real sshd)', () => {
  let sshd: SshdInstance;
  let t: TestApp;
  beforeAll(async () => {
    sshd = await startSshd();
    t = await startApp({ CRONIUM__EXECUTOR__OUTPUT_CAP_BYTES: '2048' });
  });
  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
  });

  it('keeps at most the cap per stream, says truncated, and still finishes', async () => {
    const serverId = await registerServer(t, sshd, { baseDir: `${sshd.dir}/base` });
    const res = await t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .send({
        script: {
          type: 'bash',
          content: 'for i in $(seq 1 20000); do echo "line $i"; echo "err $i" >&2; done; exit 5',
        },
        targets: { serverIds: [serverId] },
      });
    const ex = await waitForExecution(t, res.body.id);
    expect(ex.targets[0]).toMatchObject({ status: 'failed', exitCode: 5, truncated: true });
    const logs = await logsOf(t, res.body.id);
    const bytes = (s: string) =>
      logs.filter((l) => l.stream === s).reduce((n, l) => n + Buffer.byteLength(l.text) + 1, 0);
    expect(bytes('stdout')).toBeLessThanOrEqual(2048 + 16);
    expect(bytes('stderr')).toBeLessThanOrEqual(2048 + 16);
    expect(logs.filter((l) => l.stream === 'system' && /truncated/.test(l.text))).toHaveLength(2);
    expect(logs.find((l) => l.stream === 'stdout')?.text).toBe('line 1');
  });
});
