import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { logsOf, registerServer, runDirsIn, runJob, startApp, TestApp } from './support/app';
import { alive, eventually } from './support/processes';
import { ensureTestUser, SshdInstance, startSshd } from './support/sshd';

/**
 * A minimal server: its login PATH (sshd `SetEnv PATH=`) is a directory holding every
 * command of /usr/bin except python and node, as on a host where neither is installed.
 * The SSH user is an ordinary account (root's login scripts put pyenv back on PATH).
 */
describe('a server without python3 or node', () => {
  let sshd: SshdInstance;
  let t: TestApp;
  let serverId: string;
  let serverName: string;
  let baseDir: string;
  let bin: string;

  beforeAll(async () => {
    const { username } = await ensureTestUser();
    bin = fs.mkdtempSync('/tmp/cronium-nopy-bin-');
    fs.chmodSync(bin, 0o755);
    for (const name of fs.readdirSync('/usr/bin')) {
      if (!/^(python|node)/.test(name)) fs.symlinkSync(`/usr/bin/${name}`, path.join(bin, name));
    }
    sshd = await startSshd({ extraConfig: `SetEnv PATH=${bin}` });
    baseDir = path.join(sshd.dir, 'base');
    fs.mkdirSync(baseDir, { mode: 0o700 });
    execFileSync('chown', [username, baseDir]);
    t = await startApp();
    serverId = await registerServer(t, sshd, { username, baseDir });
    serverName = (await t.http().get(`/v1/servers/${serverId}`).set(t.auth)).body.name;
  });
  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
    if (bin) fs.rmSync(bin, { recursive: true, force: true });
  });

  it.each([
    ['python', 'python3', 'print("never")'],
    ['node', 'node', 'console.log("never")'],
  ])(
    'a %s script fails with interpreter_missing naming %s and the server; nothing ran or stays',
    async (type, interpreter, content) => {
      const { target, stdout, stderr } = await runJob(t, serverId, {
        script: { type, content },
      });
      expect(target).toMatchObject({
        status: 'failed',
        error: { code: 'interpreter_missing' },
      });
      expect(target.error.message).toContain(interpreter);
      expect(target.error.message).toContain(serverName);
      expect({ stdout, stderr }).toEqual({ stdout: '', stderr: '' });
      expect(runDirsIn(baseDir)).toEqual([]);
    },
  );

  it('a bash script on the same server still runs', async () => {
    const { target, stdout } = await runJob(t, serverId, {
      script: { type: 'bash', content: 'echo "bash is here"' },
    });
    expect(target).toMatchObject({ status: 'succeeded', exitCode: 0 });
    expect(stdout).toBe('bash is here');
  });
});

/** Writes zeros into `fill` (in the run dir) until the disk says it is full. */
const FILL: Record<string, string> = {
  bash: 'head -c 100000000 /dev/zero >fill 2>/dev/null',
  python: `
import os
with open("fill", "wb", buffering=0) as f:
    try:
        while True:
            f.write(b"\\0" * 65536)
    except OSError:
        pass
`,
  node: `
const fs = require('fs');
const fd = fs.openSync('fill', 'w');
try { for (;;) fs.writeSync(fd, Buffer.alloc(65536)); } catch {}
fs.closeSync(fd);
`,
};

/**
 * Each language fills the disk, then calls setVariable: the call fails once (bash: status
 * 1 and a message; python: an exception; node: a rejected promise), the script frees the
 * disk and prints what it saw, so the message reaches the log (a spool on a full disk
 * cannot take it).
 */
const SET_ON_FULL_DISK: Record<string, string> = {
  bash: `${FILL.bash}
msg=$(cronium.setVariable k v 2>&1); rc=$?
files=$(ls out | wc -l)
rm -f fill
echo "rc=$rc files=$files"
echo "msg=$msg"
`,
  python: `${FILL.python}
try:
    cronium.setVariable("k", "v")
    r = "rc=0"
except Exception as e:
    r = "rc=1 msg=%s" % e
files = len(os.listdir("out"))
os.remove("fill")
print("%s files=%d" % (r, files))
`,
  node: `${FILL.node}
(async () => {
  let r = 'rc=0';
  try { await cronium.setVariable('k', 'v'); } catch (e) { r = 'rc=1 msg=' + e.message; }
  const files = fs.readdirSync('out').length;
  fs.unlinkSync('fill');
  console.log(r + ' files=' + files);
})();
`,
};

/**
 * The server's base dir is a small tmpfs (mounted by the test, as root): room for the
 * runner and a run, which the script then fills itself, as a job writing a big file does.
 */
describe('a full disk under the base dir', () => {
  let sshd: SshdInstance;
  let t: TestApp;
  let serverId: string;
  let baseDir: string;
  let mounted = false;

  beforeAll(async () => {
    sshd = await startSshd();
    baseDir = path.join(sshd.dir, 'disk');
    fs.mkdirSync(baseDir, { mode: 0o700 });
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', baseDir], {
        stdio: 'pipe',
      });
      mounted = true;
    } catch (e: any) {
      console.warn(`skipping the full-disk tests: cannot mount a tmpfs here (${e.stderr ?? e})`);
    }
    t = await startApp();
    serverId = await registerServer(t, sshd, { baseDir });
  });
  afterAll(async () => {
    await t?.close();
    if (mounted) execFileSync('umount', ['-l', baseDir]);
    await sshd?.stop();
  });

  const get = (userId: string, key: string) =>
    t.http().get(`/v1/variables/${userId}/${key}`).set(t.auth);

  it.each(['bash', 'python', 'node'])(
    '%s: setVariable on a full disk fails once with a clear message; the run dir goes',
    async (type) => {
      if (!mounted) return;
      const userId = `full-${type}`;
      const { target, stdout } = await runJob(t, serverId, {
        helperMode: 'bundled',
        userId,
        script: { type, content: SET_ON_FULL_DISK[type] },
      });
      expect(target).toMatchObject({ status: 'succeeded', exitCode: 0 });
      // One claimed record at most (var.1.key), not one per retry.
      expect(stdout).toMatch(/^rc=1 .*files=1/s);
      expect(stdout).toMatch(/cannot write .*out.*(disk full|no space left)/i);
      expect((await get(userId, 'k')).status).toBe(404);
      expect(runDirsIn(baseDir)).toEqual([]);
    },
  );

  it('a script that leaves the disk full still ends with its own exit code; the run dir goes', async () => {
    if (!mounted) return;
    const t0 = Date.now();
    const { target } = await runJob(t, serverId, {
      helperMode: 'bundled',
      userId: 'full-left',
      script: { type: 'bash', content: `${FILL.bash}\ncronium.setVariable k v\nexit 3` },
    });
    expect(target).toMatchObject({ status: 'failed', exitCode: 3 });
    expect(Date.now() - t0).toBeLessThan(25_000); // the job timeout is 30 s
    expect((await get('full-left', 'k')).status).toBe(404);
    expect(runDirsIn(baseDir)).toEqual([]);
    // The disk is free again: the next job runs as usual.
    const next = await runJob(t, serverId, {
      helperMode: 'bundled',
      userId: 'full-left',
      script: { type: 'bash', content: 'cronium.setVariable k v && echo set' },
    });
    expect(next.target).toMatchObject({ status: 'succeeded' });
    expect((await get('full-left', 'k')).body.value).toBe('v');
  });
});

/**
 * executor.maxProcesses sets `ulimit -u` for the script: a fork bomb of a plain SSH user
 * runs into it, the job still ends at its timeout, the kill reaches every process of it,
 * and the server takes the next job.
 */
describe('a fork bomb under executor.maxProcesses', () => {
  let sshd: SshdInstance;
  let t: TestApp;
  let serverId: string;
  let username: string;

  beforeAll(async () => {
    username = (await ensureTestUser()).username;
    sshd = await startSshd();
    const baseDir = path.join(sshd.dir, 'base');
    fs.mkdirSync(baseDir, { mode: 0o700 });
    execFileSync('chown', [username, baseDir]);
    t = await startApp({ CRONIUM__EXECUTOR__MAX_PROCESSES: '150' });
    serverId = await registerServer(t, sshd, { username, baseDir });
  });
  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
  });

  it('is bounded, ends timed_out within its bound, and leaves no process behind', async () => {
    const marker = `bomb${Date.now()}`;
    const t0 = Date.now();
    const { target, stderr } = await runJob(t, serverId, {
      timeoutSeconds: 4,
      // a named function so the marker shows in every process's command line
      script: {
        type: 'bash',
        content: `${marker}() { ${marker} | ${marker} & }; ${marker}; sleep 60`,
      },
    });
    const took = (Date.now() - t0) / 1000;
    expect(target).toMatchObject({ status: 'timed_out' });
    // timeout + the test config's kill grace + 2 s, and a little for the test's own polling
    expect(took).toBeLessThan(4 + 2 + 2 + 2);
    expect(stderr).toMatch(/Resource temporarily unavailable|retry/);
    expect(await eventually(async () => (await alive(marker)).length === 0, 5000)).toBe(true);
    // the server (and its runner, pool and limits) take the next job
    const next = await runJob(t, serverId, { script: { type: 'bash', content: 'echo fine' } });
    expect(next.target).toMatchObject({ status: 'succeeded' });
    expect(next.stdout).toBe('fine');
  });
});

/**
 * A user without a home directory: sshd says "Could not chdir to home directory" on
 * stderr at every login. The standby runner must still be used (one channel per job, no
 * login on the job's path), and that noise is logged once as a system entry, never as
 * the script's stderr.
 */
describe('a login that prints to stderr (a user without a home directory)', () => {
  const USER = 'cronium-nohome';
  let sshd: SshdInstance;
  let t: TestApp;
  let serverId: string;
  let baseDir: string;

  beforeAll(async () => {
    try {
      execFileSync('id', ['-u', USER], { stdio: 'pipe' });
    } catch {
      execFileSync('useradd', ['-M', '-d', `/nonexistent/${USER}`, '-s', '/bin/bash', USER], {
        stdio: 'pipe',
      });
    }
    execFileSync('usermod', ['-p', '*', USER], { stdio: 'pipe' }); // unlocked, no password
    sshd = await startSshd();
    baseDir = path.join(sshd.dir, 'nohome');
    fs.mkdirSync(baseDir, { mode: 0o700 });
    execFileSync('chown', [USER, baseDir]);
    t = await startApp();
    serverId = await registerServer(t, sshd, { username: USER, baseDir });
  });
  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
  });

  it('keeps its standby runner, and the noise is one system entry, never script stderr', async () => {
    const noise = /Could not chdir to home directory/;
    const runs = [];
    for (let i = 0; i < 3; i++) {
      const r = await runJob(t, serverId, { script: { type: 'bash', content: `echo run-${i}` } });
      expect(r.target).toMatchObject({ status: 'succeeded', exitCode: 0 });
      expect(r.stdout).toBe(`run-${i}`);
      expect(r.stderr).not.toMatch(noise);
      runs.push(r);
      // a standby waits for the next job (it used to be thrown away on the first stderr byte)
      const standby = async () =>
        fs.readdirSync(path.join(baseDir, 'runs')).some((n) => n.startsWith('.standby-'));
      expect(await eventually(standby, 5000)).toBe(true);
    }
    const told = [];
    for (const r of runs) {
      const logs = await logsOf(t, r.ex.id);
      told.push(...logs.filter((l) => l.stream === 'system' && noise.test(l.text)));
    }
    expect(told).toHaveLength(1);
  });
});
