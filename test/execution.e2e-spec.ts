import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import {
  logsOf,
  registerServer,
  startApp,
  TestApp,
  waitForExecution,
  waitForTargetStatus,
  runDirsIn,
} from './support/app';
import { alive, eventually } from './support/processes';
import { ensureTestUser, sh, SshdInstance, startSshd } from './support/sshd';

const RUNNER_VERSION = fs
  .readFileSync(path.resolve(__dirname, '../src/runner-cache/remote/VERSION'), 'utf8')
  .trim();

const uniq = () => 3000 + Math.floor(Math.random() * 6000);

describe('running a script on one server (real sshd)', () => {
  let sshd: SshdInstance;
  let t: TestApp;
  let serverId: string;
  let baseDir: string;

  const submit = (body: Record<string, unknown>, headers: Record<string, string> = {}) =>
    t
      .http()
      .post('/v1/jobs')
      .set({ ...t.auth, ...headers })
      .send({ targets: { serverIds: [serverId] }, ...body });

  const run = async (body: Record<string, unknown>) => {
    const res = await submit(body);
    expect(res.status).toBe(202);
    return waitForExecution(t, res.body.id);
  };

  beforeAll(async () => {
    sshd = await startSshd();
    t = await startApp();
    baseDir = `${sshd.dir}/base`;
    serverId = await registerServer(t, sshd, { baseDir });
  });

  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
  });

  it('succeeds with stdout and stderr kept apart, gap-free log sequence and a runner system entry', async () => {
    const ex = await run({
      script: { type: 'bash', content: 'echo out1; echo err1 >&2; echo out2; printf "no newline"' },
    });
    expect(ex.status).toBe('succeeded');
    expect(ex.summary).toMatchObject({ total: 1, succeeded: 1, failed: 0 });
    const target = ex.targets[0];
    expect(target).toMatchObject({
      serverId,
      status: 'succeeded',
      exitCode: 0,
      signal: null,
      truncated: false,
    });
    expect(target.error).toBeUndefined();
    expect(typeof target.durationMs).toBe('number');
    expect(target.phases.runMs).toEqual(expect.any(Number));

    const logs = await logsOf(t, ex.id);
    expect(logs.map((l) => l.seq)).toEqual(logs.map((_, i) => i + 1));
    const by = (s: string) => logs.filter((l) => l.stream === s).map((l) => l.text);
    expect(by('stdout')).toEqual(['out1', 'out2', 'no newline']);
    expect(by('stderr')).toEqual(['err1']);
    expect(by('system').join('\n')).toContain(`runner ${RUNNER_VERSION} on Linux`);
    // the target's run directory is gone
    expect(await eventually(async () => runDirsIn(baseDir).length === 0, 3000)).toBe(true);
    const mode = fs.statSync(baseDir).mode & 0o777;
    expect(mode).toBe(0o700);
  });

  it('reports the exact non-zero exit code, and python and node scripts run too', async () => {
    const bash = await run({ script: { type: 'bash', content: 'exit 42' } });
    expect(bash.status).toBe('failed');
    expect(bash.targets[0]).toMatchObject({ status: 'failed', exitCode: 42 });
    expect(bash.targets[0].error).toBeUndefined();

    const py = await run({
      script: { type: 'python', content: 'import sys\nprint("py", 6*7)\nsys.exit(7)' },
    });
    expect(py.targets[0]).toMatchObject({ status: 'failed', exitCode: 7 });
    expect((await logsOf(t, py.id)).some((l) => l.stream === 'stdout' && l.text === 'py 42')).toBe(
      true,
    );

    const node = await run({ script: { type: 'node', content: 'console.log("node", 1+1)' } });
    expect(node.targets[0]).toMatchObject({ status: 'succeeded', exitCode: 0 });
    expect((await logsOf(t, node.id)).some((l) => l.text === 'node 2')).toBe(true);
  });

  it('reports a script killed by a signal', async () => {
    const ex = await run({ script: { type: 'bash', content: 'kill -KILL $$' } });
    expect(ex.targets[0]).toMatchObject({ status: 'failed', exitCode: 137, signal: 'SIGKILL' });
  });

  it('times out, kills the whole remote tree and says timed_out', async () => {
    const n = uniq();
    const started = Date.now();
    const ex = await run({
      timeoutSeconds: 2,
      script: {
        type: 'bash',
        content: `sleep ${n} & sleep ${n + 1} & (sleep ${n + 2}; echo x) & sleep ${n + 3}`,
      },
    });
    expect(ex.status).toBe('failed');
    expect(ex.targets[0].status).toBe('timed_out');
    expect(Date.now() - started).toBeLessThan(15000);
    expect(await eventually(async () => (await alive(`sleep ${n}`)).length === 0, 5000)).toBe(true);
    for (const k of [1, 2, 3]) expect(await alive(`sleep ${n + k}`)).toEqual([]);
  });

  it('cancels, kills the whole remote tree and says cancelled (not timed_out)', async () => {
    const n = uniq();
    const res = await submit({
      timeoutSeconds: 600,
      script: {
        type: 'bash',
        content: `sleep ${n} & sleep ${n + 1} & echo started; sleep ${n + 2}`,
      },
    });
    await waitForTargetStatus(t, res.body.id, 'running');
    expect(await eventually(async () => (await alive(`sleep ${n + 2}`)).length === 1)).toBe(true);
    const c = await t.http().post(`/v1/executions/${res.body.id}/cancel`).set(t.auth);
    expect(c.status).toBe(202);
    const ex = await waitForExecution(t, res.body.id);
    expect(ex.status).toBe('cancelled');
    expect(ex.targets[0].status).toBe('cancelled');
    expect(await eventually(async () => (await alive(`sleep ${n}`)).length === 0, 5000)).toBe(true);
    expect(await alive(`sleep ${n + 1}`)).toEqual([]);
    expect(await alive(`sleep ${n + 2}`)).toEqual([]);
    // cancelling again is a conflict, not a 500
    const again = await t.http().post(`/v1/executions/${res.body.id}/cancel`).set(t.auth);
    expect(again.status).toBe(409);
  });

  it('kills leftover background children when the script exits normally', async () => {
    const n = uniq();
    const ex = await run({ script: { type: 'bash', content: `sleep ${n} & echo done` } });
    expect(ex.targets[0].status).toBe('succeeded');
    expect(await eventually(async () => (await alive(`sleep ${n}`)).length === 0, 5000)).toBe(true);
  });

  it('a dropped SSH connection is a pause: the service re-attaches and the job ends with its real exit code', async () => {
    const res = await submit({
      script: {
        type: 'bash',
        content: 'for i in 1 2 3 4 5 6; do echo "tick $i"; sleep 0.5; done; echo err >&2; exit 3',
      },
    });
    await waitForTargetStatus(t, res.body.id, 'running');
    expect(
      await eventually(async () => (await logsOf(t, res.body.id)).some((l) => l.text === 'tick 2')),
    ).toBe(true);
    await sshd.killConnections();
    const ex = await waitForExecution(t, res.body.id);
    expect(ex.targets[0]).toMatchObject({ status: 'failed', exitCode: 3 });
    expect(ex.targets[0].error).toBeUndefined();
    const logs = await logsOf(t, res.body.id);
    const stdout = logs.filter((l) => l.stream === 'stdout').map((l) => l.text);
    expect(stdout).toEqual(['tick 1', 'tick 2', 'tick 3', 'tick 4', 'tick 5', 'tick 6']);
    expect(logs.filter((l) => l.stream === 'stderr').map((l) => l.text)).toEqual(['err']);
    expect(
      logs.some(
        (l) => l.stream === 'system' && /^connection lost; re-attached after \d+ ms$/.test(l.text),
      ),
    ).toBe(true);
    expect(logs.map((l) => l.seq)).toEqual(logs.map((_, i) => i + 1));
    // the pool reconnects for the next job
    const next = await run({ script: { type: 'bash', content: 'echo back' } });
    expect(next.status).toBe('succeeded');
  });

  it('redeploys and retries once when the remote cache was wiped', async () => {
    await run({ script: { type: 'bash', content: 'true' } });
    fs.rmSync(baseDir, { recursive: true, force: true });
    const ex = await run({ script: { type: 'bash', content: 'echo again' } });
    expect(ex.status).toBe('succeeded');
    const logs = await logsOf(t, ex.id);
    expect(logs.some((l) => l.stream === 'system' && /redeploying/.test(l.text))).toBe(true);
    expect(logs.some((l) => l.stream === 'stdout' && l.text === 'again')).toBe(true);
  });

  it('keeps secrets off the remote command line and out of API responses', async () => {
    const secret = 'S3cr3t-' + Math.random().toString(36).slice(2);
    const n = uniq();
    const res = await submit({
      env: { API_SECRET: secret },
      input: { password: secret },
      script: { type: 'bash', content: `test "$API_SECRET" = "${'$'}API_SECRET" ; sleep ${n}` },
    });
    await waitForTargetStatus(t, res.body.id, 'running');
    expect(await eventually(async () => (await alive(`sleep ${n}`)).length === 1)).toBe(true);
    const ps = await sh('ps -eo args');
    expect(ps.stdout).not.toContain(secret);
    const runnerLines = ps.stdout.split('\n').filter((l) => l.includes(`${baseDir}/runners`));
    expect(runnerLines.length).toBeGreaterThan(0);
    // the fixed bootstrap, possibly still inside the login shell that runs it (then with
    // the base-dir guard before it), or a standby's parked script process (verb `script`):
    // paths and fixed words only
    for (const l of runnerLines)
      expect(l).toMatch(
        /^(\S*sh -c (B='[^']*'; R="\$B\/runners\/[0-9a-f]{64}"; [^']*; )?exec )?sh '?\S+\/runners\/[0-9a-f]{64}\/runner\.sh'? (run|script)$/,
      );
    await t.http().post(`/v1/executions/${res.body.id}/cancel`).set(t.auth);
    const ex = await waitForExecution(t, res.body.id);
    expect(JSON.stringify(ex)).not.toContain(secret);
    const logs = await t.http().get(`/v1/executions/${res.body.id}/logs`).set(t.auth);
    expect(JSON.stringify(logs.body)).not.toContain(secret);
  });

  it('env values with quotes, newlines and shell syntax arrive unchanged and never run', async () => {
    const marker = `/tmp/cronium-pwned-${uniq()}`;
    const value = `it's "quoted" $(touch ${marker}) \`touch ${marker}\` ; touch ${marker}\nline2 ✓`;
    const ex = await run({
      env: { TRICKY: value },
      name: `$(touch ${marker})`,
      script: { type: 'bash', content: 'printf "%s" "$TRICKY" | od -An -c | tr -d " \\n"; echo' },
    });
    expect(ex.status).toBe('succeeded');
    expect(fs.existsSync(marker)).toBe(false);
    const py = await run({
      env: { TRICKY: value },
      script: {
        type: 'python',
        content: 'import os, json\nprint(json.dumps(os.environ["TRICKY"]))',
      },
    });
    const line = (await logsOf(t, py.id)).find((l) => l.stream === 'stdout');
    expect(JSON.parse(line.text)).toBe(value);
  });

  it('a daemon that keeps stdout open does not hold the job, and it does not outlive it', async () => {
    const n = 6000 + Math.floor(Math.random() * 3000);
    const t0 = Date.now();
    const ex = await run({
      script: { type: 'bash', content: `setsid sleep ${n} & setsid -f sleep ${n + 1}; echo bye` },
      timeoutSeconds: 15,
    });
    expect(Date.now() - t0).toBeLessThan(8000);
    expect(ex.status).toBe('succeeded');
    expect(ex.targets[0]).toMatchObject({ status: 'succeeded', exitCode: 0 });
    expect(await alive(`sleep ${n}`)).toEqual([]);
    expect(await alive(`sleep ${n + 1}`)).toEqual([]);
  });

  it('where the run has a cgroup (root here), even a process that clears its environment and leaves group and session is killed', async () => {
    // The harness runs jobs as root: the runner makes a cgroup v2 of the run's own when
    // the cgroup2 mount is writable. Where it is not, only the marks apply.
    const mnt = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' '))
      .find((f) => f[f.indexOf('-') + 1] === 'cgroup2' && f[3] === '/')?.[4];
    if (!mnt || (await sh(`test -w ${mnt}/cgroup.procs`)).code !== 0) {
      console.log(`skipped: no writable cgroup2 mount here (${mnt ?? 'none'})`);
      return;
    }
    const n = 9000 + Math.floor(Math.random() * 900);
    const ex = await run({
      script: {
        type: 'bash',
        content: [
          `env -i setsid -f sleep ${n}`,
          `env -i setsid -f sh -c 'sleep ${n + 1} & exec sleep ${n + 2}'`,
          'cat /proc/self/cgroup',
          'sleep 0.3; echo bye',
        ].join('\n'),
      },
    });
    expect(ex.targets[0]).toMatchObject({ status: 'succeeded', exitCode: 0 });
    const stdout = (await logsOf(t, ex.id)).filter((l) => l.stream === 'stdout');
    const own = stdout.map((l) => /^0::(\/.*cronium-[0-9a-f-]+)$/.exec(l.text)?.[1]).find(Boolean);
    expect(own).toBeDefined();
    for (const k of [n, n + 1, n + 2]) {
      expect(await eventually(async () => (await alive(`sleep ${k}`)).length === 0, 5000)).toBe(
        true,
      );
    }
    // and the run's cgroup went with it
    expect(await eventually(async () => !fs.existsSync(path.join(mnt, own!)), 5000)).toBe(true);
  });

  it('GET ?wait= answers at the end of the execution, or with the current view when the wait runs out; bad waits are 400', async () => {
    const res = await submit({ script: { type: 'bash', content: 'sleep 1; echo done; exit 2' } });
    const id = res.body.id;
    let t0 = Date.now();
    const ended = await t.http().get(`/v1/executions/${id}?wait=20`).set(t.auth);
    expect(ended.status).toBe(200);
    expect(ended.body.status).toBe('failed');
    expect(ended.body.finishedAt).not.toBeNull();
    expect(ended.body.targets[0]).toMatchObject({ status: 'failed', exitCode: 2 });
    expect(Date.now() - t0).toBeLessThan(10_000); // the end woke it, not the 20 s
    // every line is there once it says so
    expect((await logsOf(t, id)).some((l) => l.text === 'done')).toBe(true);
    // already ended: at once
    t0 = Date.now();
    expect((await t.http().get(`/v1/executions/${id}?wait=60`).set(t.auth)).body.status).toBe(
      'failed',
    );
    expect(Date.now() - t0).toBeLessThan(2000);

    // the wait runs out first: the view as it is
    const long = await submit({ script: { type: 'bash', content: 'sleep 30' } });
    t0 = Date.now();
    const still = await t.http().get(`/v1/executions/${long.body.id}?wait=1`).set(t.auth);
    const took = Date.now() - t0;
    expect(still.status).toBe(200);
    expect(['queued', 'running']).toContain(still.body.status);
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(5000);
    await t.http().post(`/v1/executions/${long.body.id}/cancel`).set(t.auth);

    for (const q of ['wait=61', 'wait=-1', 'wait=abc', 'wait=1.5', 'wait=0x10', 'bogus=1']) {
      const bad = await t.http().get(`/v1/executions/${id}?${q}`).set(t.auth);
      expect([q, bad.status]).toEqual([q, 400]);
      expect(bad.body).toMatchObject({ statusCode: 400, error: 'Bad Request' });
    }
    await waitForExecution(t, long.body.id);
  });

  it('GET of an execution answers alike in its plain form (taken before express) and through the app', async () => {
    const res = await submit({ script: { type: 'bash', content: 'echo same' } });
    const id = res.body.id;
    const plain = await t.http().get(`/v1/executions/${id}?wait=20`).set(t.auth);
    expect(plain.body.status).toBe('succeeded');
    // the same request with a conditional header goes through express and Nest
    const viaApp = await t
      .http()
      .get(`/v1/executions/${id}`)
      .set({ ...t.auth, 'If-None-Match': '"not-it"', 'X-Request-Id': 'req-via-app' });
    const fast = await t
      .http()
      .get(`/v1/executions/${id}?wait=0`)
      .set({ ...t.auth, 'X-Request-Id': 'req-plain' });
    expect([viaApp.status, fast.status]).toEqual([200, 200]);
    expect(fast.text).toBe(viaApp.text);
    expect(fast.body).toEqual(plain.body);
    for (const h of ['content-type', 'content-length', 'etag']) {
      expect([h, fast.headers[h]]).toEqual([h, viaApp.headers[h]]);
    }
    expect([fast.headers['x-request-id'], viaApp.headers['x-request-id']]).toEqual([
      'req-plain',
      'req-via-app',
    ]);
    // the ETag is express's: a conditional GET with it is a 304
    const cached = await t
      .http()
      .get(`/v1/executions/${id}`)
      .set({ ...t.auth, 'If-None-Match': fast.headers.etag });
    expect(cached.status).toBe(304);
    // errors as the app renders them
    const missing = `/v1/executions/00000000-0000-4000-8000-000000000000`;
    const gone = await t.http().get(`${missing}?wait=1`).set(t.auth);
    const goneViaApp = await t
      .http()
      .get(`${missing}?wait=1`)
      .set({ ...t.auth, 'If-Modified-Since': new Date().toUTCString() });
    expect([gone.status, gone.body]).toEqual([404, goneViaApp.body]);
    expect(gone.body).toMatchObject({ statusCode: 404, error: 'Not Found' });
    // the plain form without a valid token is the app's 401
    const anon = await t.http().get(`/v1/executions/${id}`);
    const wrong = await t.http().get(`/v1/executions/${id}`).set({ Authorization: 'Bearer nope' });
    expect([anon.status, wrong.status]).toEqual([401, 401]);
    expect(wrong.body).toMatchObject({
      statusCode: 401,
      message: 'missing or invalid bearer token',
    });
  });

  it('two servers sharing one connection with different base dirs each keep a standby runner, started once the job has ended', async () => {
    const dirB = `${sshd.dir}/base-b`;
    const idB = await registerServer(t, sshd, { baseDir: dirB, name: `same-creds-${uniq()}` });
    // a standby runner prepares runs/.standby-<pid> while it waits for its payload
    const standbys = async (dir: string) =>
      fs.readdirSync(path.join(dir, 'runs')).filter((n) => n.startsWith('.standby-')).length;
    for (let round = 0; round < 2; round++) {
      for (const id of [serverId, idB]) {
        const res = await t
          .http()
          .post('/v1/jobs')
          .set(t.auth)
          .send({ script: { type: 'bash', content: 'echo hi' }, targets: { serverIds: [id] } });
        expect((await waitForExecution(t, res.body.id)).status).toBe('succeeded');
      }
    }
    // one waiting runner per base dir on the shared connection (none would mean every job
    // pays for a session and a login shell); 15 s: a login under CI's load can take seconds
    await eventually(async () => (await standbys(baseDir)) === 1, 15000);
    await eventually(async () => (await standbys(dirB)) === 1, 15000);
    // the counts themselves, so a failure tells none from too many
    expect({ a: await standbys(baseDir), b: await standbys(dirB) }).toEqual({ a: 1, b: 1 });
    await t.http().delete(`/v1/servers/${idB}`).set(t.auth);
  });

  it('returns the same execution for a retried POST with the same Idempotency-Key', async () => {
    const key = `key-${uniq()}`;
    const body = { script: { type: 'bash', content: 'echo once' } };
    const a = await submit(body, { 'Idempotency-Key': key });
    const b = await submit(body, { 'Idempotency-Key': key });
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    expect(b.body.id).toBe(a.body.id);
    // the same key with another body: 422, and nothing new
    const c = await submit(
      { script: { type: 'bash', content: 'echo twice' } },
      { 'Idempotency-Key': key },
    );
    expect(c.status).toBe(422);
    expect(c.body).toMatchObject({ statusCode: 422, error: 'Unprocessable Entity' });
  });

  it('handles a 200 KB line and binary output without stalling', async () => {
    const ex = await run({
      script: {
        type: 'bash',
        content:
          'head -c 200000 /dev/zero | tr "\\0" a; echo; head -c 4096 /dev/urandom; echo; echo end',
      },
    });
    expect(ex.status).toBe('succeeded');
    const logs = await logsOf(t, ex.id);
    const out = logs.filter((l) => l.stream === 'stdout');
    expect(out.slice(0, 4).map((l) => l.text.length)).toEqual([65536, 65536, 65536, 3392]);
    expect(out[out.length - 1].text).toBe('end');
  });

  it("forgets a server's runner cache when the server is edited or deleted", async () => {
    const { DataSource } = await import('typeorm');
    const { RunnerCacheEntity } = await import('../src/persistence/entities');
    const cache = t.app.get(DataSource).getRepository(RunnerCacheEntity);
    const id = await registerServer(t, sshd, { baseDir: `${sshd.dir}/forget` });
    const res = await t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .send({ script: { type: 'bash', content: 'true' }, targets: { serverIds: [id] } });
    await waitForExecution(t, res.body.id);
    expect(await cache.countBy({ serverId: id })).toBe(1);
    await t
      .http()
      .patch(`/v1/servers/${id}`)
      .set(t.auth)
      .send({ tags: ['x'] })
      .expect(200);
    expect(await eventually(async () => (await cache.countBy({ serverId: id })) === 0, 3000)).toBe(
      true,
    );
    const again = await t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .send({ script: { type: 'bash', content: 'true' }, targets: { serverIds: [id] } });
    expect((await waitForExecution(t, again.body.id)).status).toBe('succeeded');
    await t.http().delete(`/v1/servers/${id}`).set(t.auth).expect(204);
    expect(await eventually(async () => (await cache.countBy({ serverId: id })) === 0, 3000)).toBe(
      true,
    );
  });

  it('pins the host key on first use, and keeps it when only the port changes', async () => {
    const res = await t.http().get(`/v1/servers/${serverId}`).set(t.auth);
    expect(res.body).toMatchObject({
      hostKeyFingerprint: sshd.hostKeyFingerprint,
      hostKeySource: 'tofu',
      hostKeyPinnedAt: expect.any(String),
    });
    for (const port of [sshd.port + 1, sshd.port]) {
      const p = await t.http().patch(`/v1/servers/${serverId}`).set(t.auth).send({ port });
      expect(p.body).toMatchObject({ port, hostKeyFingerprint: sshd.hostKeyFingerprint });
      expect(p.body.hostKeyPinnedAt).toBe(res.body.hostKeyPinnedAt);
    }
  });
});

describe('connection failures (real sshd)', () => {
  let sshd: SshdInstance;
  let other: SshdInstance;
  let t: TestApp;

  beforeAll(async () => {
    [sshd, other] = await Promise.all([startSshd(), startSshd()]);
    t = await startApp();
  });
  afterAll(async () => {
    await t?.close();
    await Promise.all([sshd?.stop(), other?.stop()]);
  });

  const runOn = async (serverId: string) => {
    const res = await t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .send({ script: { type: 'bash', content: 'echo hi' }, targets: { serverIds: [serverId] } });
    expect(res.status).toBe(202);
    return waitForExecution(t, res.body.id);
  };

  it('a server check answers within its timeoutSeconds, even from a port that accepts and never speaks', async () => {
    const silent = net.createServer(() => undefined); // accepts, says nothing
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const id = await registerServer(t, sshd, { port });
      const t0 = Date.now();
      const res = await t.http().post(`/v1/servers/${id}/check?timeoutSeconds=2`).set(t.auth);
      expect(Date.now() - t0).toBeLessThan(4000);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        ok: false,
        error: { code: 'connect_failed', message: expect.any(String) },
      });
      const bad = await t.http().post(`/v1/servers/${id}/check?timeoutSeconds=0`).set(t.auth);
      expect(bad.status).toBe(400);
    } finally {
      silent.close();
    }
  });

  it('refuses a host whose key does not match the pinned one: host_key_mismatch', async () => {
    const id = await registerServer(t, sshd, {
      hostKey: other.hostPublicKey,
      baseDir: `${sshd.dir}/b1`,
    });
    const ex = await runOn(id);
    expect(ex.targets[0].status).toBe('failed');
    expect(ex.targets[0].error.code).toBe('host_key_mismatch');
    expect(fs.existsSync(`${sshd.dir}/b1`)).toBe(false);
  });

  it('accepts a host whose key matches a given fingerprint', async () => {
    const id = await registerServer(t, sshd, {
      hostKey: sshd.hostKeyFingerprint,
      baseDir: `${sshd.dir}/b2`,
    });
    expect((await runOn(id)).status).toBe('succeeded');
  });

  it('reports wrong credentials as auth_failed', async () => {
    const stranger = await other.addClientKey('ed25519'); // authorized on the other sshd only
    const id = await registerServer(t, sshd, {
      privateKey: stranger.privateKey,
      baseDir: `${sshd.dir}/b3`,
    });
    const ex = await runOn(id);
    expect(ex.targets[0].error.code).toBe('auth_failed');
  });

  it('connects with a password, and with an RSA key behind a passphrase', async () => {
    const user = await ensureTestUser();
    const pw = await t
      .http()
      .post('/v1/servers')
      .set(t.auth)
      .send({
        name: `pw-${sshd.port}`,
        host: sshd.host,
        port: sshd.port,
        username: user.username,
        password: user.password,
      });
    expect(pw.status).toBe(201);
    expect(JSON.stringify(pw.body)).not.toContain(user.password);
    expect((await runOn(pw.body.id)).status).toBe('succeeded');

    const bad = await t
      .http()
      .post('/v1/servers')
      .set(t.auth)
      .send({
        name: `pw-bad-${sshd.port}`,
        host: sshd.host,
        port: sshd.port,
        username: user.username,
        password: 'nope',
      });
    expect((await runOn(bad.body.id)).targets[0].error.code).toBe('auth_failed');

    const rsa = await sshd.addClientKey('rsa', 'pass phrase');
    const id = await registerServer(t, sshd, {
      privateKey: rsa.privateKey,
      passphrase: 'pass phrase',
      baseDir: `${sshd.dir}/b4`,
    });
    expect((await runOn(id)).status).toBe('succeeded');
  });

  it('reports an unreachable server as connect_failed', async () => {
    const res = await t
      .http()
      .post('/v1/servers')
      .set(t.auth)
      .send({ name: 'nowhere', host: '127.0.0.1', port: 1, username: 'root', password: 'x' });
    const ex = await runOn(res.body.id);
    expect(ex.targets[0].error.code).toBe('connect_failed');
  });
});
