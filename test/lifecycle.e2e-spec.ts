import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  logsOf,
  registerServer,
  startApp,
  TEST_TOKEN,
  TestApp,
  waitForExecution,
} from './support/app';
import { alive } from './support/processes';
import { freePort, SshdInstance, startSshd } from './support/sshd';

const MAIN = path.resolve(__dirname, '../dist/main.js');

describe('service lifecycle (real process, real sshd)', () => {
  let sshd: SshdInstance;
  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(async () => sshd?.stop());

  it('closes executions left in flight by a killed process as orchestrator_restarted; the remote tree dies', async () => {
    expect(fs.existsSync(MAIN)).toBe(true); // npm test builds dist/ first
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-restart-'));
    const port = await freePort();
    const env = {
      ...process.env,
      PORT: String(port),
      CRONIUM_DATA_DIR: dataDir,
      CRONIUM_SERVICE_TOKENS: TEST_TOKEN,
      NODE_ENV: 'test',
    };
    const child: ChildProcess = spawn(process.execPath, [MAIN], { env, stdio: 'ignore' });
    const base = `http://127.0.0.1:${port}`;
    const headers = { Authorization: `Bearer ${TEST_TOKEN}`, 'Content-Type': 'application/json' };
    try {
      for (let i = 0; ; i++) {
        const ok = await fetch(`${base}/health/ready`).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) break;
        if (i > 300) throw new Error('service did not start');
        await new Promise((r) => setTimeout(r, 100));
      }
      const srv = await fetch(`${base}/v1/servers`, {
        method: 'POST',
        headers,
        body: JSON.stringify({
          name: 'restart-srv',
          host: sshd.host,
          port: sshd.port,
          username: sshd.username,
          privateKey: sshd.key.privateKey,
          baseDir: `${sshd.dir}/base`,
        }),
      }).then((r) => r.json());
      const n = 4000 + Math.floor(Math.random() * 4000);
      const job = await fetch(`${base}/v1/jobs`, {
        method: 'POST',
        headers,
        body: JSON.stringify({
          script: { type: 'bash', content: `sleep ${n} & sleep ${n + 1}` },
          targets: { serverIds: [srv.id] },
        }),
      }).then((r) => r.json());
      for (let i = 0; (await alive(`sleep ${n + 1}`)).length === 0; i++) {
        if (i > 200) throw new Error('script never started');
        await new Promise((r) => setTimeout(r, 50));
      }
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));

      // Its SSH connection died with it: the runner must have killed the tree.
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
        const ex = await t.http().get(`/v1/executions/${job.id}`).set(t.auth);
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
      if (child.exitCode === null) child.kill('SIGKILL');
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
    const port = await freePort();
    const child = spawn(process.execPath, [MAIN], {
      env: {
        ...process.env,
        PORT: String(port),
        CRONIUM_DATA_DIR: dataDir,
        CRONIUM_SERVICE_TOKENS: TEST_TOKEN,
        CRONIUM_SHUTDOWN_GRACE_SECONDS: '2',
        NODE_ENV: 'test',
      },
      stdio: 'ignore',
    });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const base = `http://127.0.0.1:${port}`;
    const headers = { Authorization: `Bearer ${TEST_TOKEN}`, 'Content-Type': 'application/json' };
    try {
      for (
        let i = 0;
        !(await fetch(`${base}/health/ready`).then(
          (r) => r.ok,
          () => false,
        ));
        i++
      ) {
        if (i > 300) throw new Error('service did not start');
        await new Promise((r) => setTimeout(r, 100));
      }
      const srv = await fetch(`${base}/v1/servers`, {
        method: 'POST',
        headers,
        body: JSON.stringify({
          name: 'term-srv',
          host: sshd.host,
          port: sshd.port,
          username: sshd.username,
          privateKey: sshd.key.privateKey,
          baseDir: `${sshd.dir}/base`,
        }),
      }).then((r) => r.json());
      const n = 4000 + Math.floor(Math.random() * 4000);
      const job = await fetch(`${base}/v1/jobs`, {
        method: 'POST',
        headers,
        body: JSON.stringify({
          script: { type: 'bash', content: `sleep ${n} & sleep ${n + 1}` },
          targets: { serverIds: [srv.id] },
        }),
      }).then((r) => r.json());
      for (let i = 0; (await alive(`sleep ${n + 1}`)).length === 0; i++) {
        if (i > 200) throw new Error('script never started');
        await new Promise((r) => setTimeout(r, 50));
      }
      child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 300));
      expect((await fetch(`${base}/health/ready`)).status).toBe(503);
      const refused = await fetch(`${base}/v1/jobs`, {
        method: 'POST',
        headers,
        body: JSON.stringify({
          script: { type: 'bash', content: 'true' },
          targets: { serverIds: [srv.id] },
        }),
      });
      expect(refused.status).toBe(503);
      expect(await exited).toBe(0);
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
      if (child.exitCode === null) child.kill('SIGKILL');
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
