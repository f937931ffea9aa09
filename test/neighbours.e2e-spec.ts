import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { logsOf, registerServer, startApp, TestApp, waitForExecution } from './support/app';
import { ensureTestUser, SshdInstance, startSshd } from './support/sshd';

/** The other local user: a neighbour on the server who would like the SSH user's secrets. */
const NEIGHBOUR = 'cronium-nbr';

function ensureNeighbour(): void {
  const exists = () => {
    try {
      execFileSync('id', ['-u', NEIGHBOUR], { stdio: 'pipe' });
      return true;
    } catch {
      return false;
    }
  };
  if (exists()) return;
  try {
    execFileSync('useradd', ['-M', '-s', '/bin/sh', NEIGHBOUR], { stdio: 'pipe' });
  } catch (e) {
    if (!exists()) throw e; // another worker made it meanwhile: fine
  }
}

/** Runs a shell command as the neighbour. */
function asNeighbour(script: string): void {
  execFileSync('runuser', ['-u', NEIGHBOUR, '--', 'sh', '-c', script], { stdio: 'pipe' });
}

const SECRET = `s3cret-${process.pid}-value`;

describe('neighbours: a base dir another local user owns or may write is refused', () => {
  let sshd: SshdInstance;
  let t: TestApp;
  let username: string;
  const loot = `/tmp/cronium-nbr-loot-${process.pid}`;

  beforeAll(async () => {
    ({ username } = await ensureTestUser());
    ensureNeighbour();
    sshd = await startSshd();
    t = await startApp();
  });
  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
    fs.rmSync(loot, { force: true });
  });

  /** A base dir in the sshd's temp dir with that owner and mode, and a server using it. */
  async function serverWith(name: string, owner: string, mode: number) {
    const baseDir = path.join(sshd.dir, name);
    fs.mkdirSync(baseDir);
    execFileSync('chown', [owner, baseDir]);
    fs.chmodSync(baseDir, mode);
    const serverId = await registerServer(t, sshd, { username, baseDir });
    return { baseDir, serverId };
  }

  async function job(serverId: string) {
    const res = await t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .send({
        script: { type: 'bash', content: 'echo "ran with $APP_SECRET"' },
        env: { APP_SECRET: SECRET },
        targets: { serverIds: [serverId] },
        timeoutSeconds: 30,
      });
    expect(res.status).toBe(202);
    const ex = await waitForExecution(t, res.body.id);
    const stdout = (await logsOf(t, ex.id)).filter((l) => l.stream === 'stdout');
    return { target: ex.targets[0], stdout: stdout.map((l) => l.text) };
  }

  it('(a) a base dir the neighbour owns (even one we could write): deploy_failed naming it, nothing written', async () => {
    const { baseDir, serverId } = await serverWith('theirs', NEIGHBOUR, 0o777);
    const { target, stdout } = await job(serverId);
    expect(target).toMatchObject({ status: 'failed', error: { code: 'deploy_failed' } });
    expect(target.error.message).toContain(`${baseDir}`);
    expect(target.error.message).toMatch(/owned by another user/);
    expect(stdout).toEqual([]);
    expect(fs.readdirSync(baseDir)).toEqual([]);
  });

  it.each([
    ['group', 0o770],
    ['others', 0o707],
    ['others (sticky, like /tmp)', 0o1777],
  ])(
    '(b) a base dir writable by %s: deploy_failed naming it, nothing written',
    async (_who, mode) => {
      const { baseDir, serverId } = await serverWith(`open-${mode.toString(8)}`, username, mode);
      const { target, stdout } = await job(serverId);
      expect(target).toMatchObject({ status: 'failed', error: { code: 'deploy_failed' } });
      expect(target.error.message).toContain(baseDir);
      expect(target.error.message).toMatch(/writable by group or others/);
      expect(stdout).toEqual([]);
      expect(fs.readdirSync(baseDir)).toEqual([]);
    },
  );

  it('(c) the runner swapped after a good job: the next jobs refuse; the secret never reaches the neighbour', async () => {
    const { baseDir, serverId } = await serverWith('swapped', username, 0o700);
    const first = await job(serverId);
    expect(first.target).toMatchObject({ status: 'succeeded' });
    expect(first.stdout).toEqual([`ran with ${SECRET}`]);
    const [hash] = fs.readdirSync(path.join(baseDir, 'runners')).filter((n) => !n.startsWith('.'));
    const runnerDir = path.join(baseDir, 'runners', hash);

    // A careless recursive chmod opens the tree; the neighbour puts a runner of theirs in
    // place that keeps a copy of every job's stdin (env values, tokens) and runs the real one.
    execFileSync('chmod', ['-R', 'go+rwx', baseDir]);
    asNeighbour(
      `cd '${runnerDir}' && mv runner.sh real.sh && ` +
        `printf '#!/bin/sh\\ntee -a ${loot} | exec sh "$(dirname "$0")/real.sh" "$@"\\n' >runner.sh`,
    );
    expect(fs.statSync(path.join(runnerDir, 'runner.sh')).uid).not.toBe(fs.statSync(baseDir).uid);

    // The next job was likely waiting already in a runner started before the swap (standby):
    // it refuses before reading the job in; later ones are refused before the runner starts.
    for (let i = 0; i < 3; i++) {
      const { target, stdout } = await job(serverId);
      expect(target).toMatchObject({ status: 'failed', error: { code: 'deploy_failed' } });
      expect(target.error.message).toMatch(/unsafe path/);
      expect(target.error.message).toContain(baseDir);
      expect(stdout).toEqual([]);
    }
    const stolen = fs.existsSync(loot) ? fs.readFileSync(loot, 'utf8') : '';
    expect(stolen).not.toContain(SECRET);
    expect(stolen).toBe('');
  });

  it('(c) a mode change alone after a good job: the next job refuses rather than trusting the cache', async () => {
    const { baseDir, serverId } = await serverWith('chmodded', username, 0o700);
    expect((await job(serverId)).target).toMatchObject({ status: 'succeeded' });
    fs.chmodSync(path.join(baseDir, 'runs'), 0o777);
    const { target, stdout } = await job(serverId);
    expect(target).toMatchObject({ status: 'failed', error: { code: 'deploy_failed' } });
    expect(target.error.message).toContain(path.join(baseDir, 'runs'));
    expect(target.error.message).toMatch(/writable by group or others/);
    expect(stdout).toEqual([]);
    // Fixed by its owner: jobs run again.
    fs.chmodSync(path.join(baseDir, 'runs'), 0o700);
    expect((await job(serverId)).target).toMatchObject({ status: 'succeeded' });
  });
});

describe('neighbours: the helper API of a running job', () => {
  let sshd: SshdInstance;
  let t: TestApp;
  let serverId: string;
  const go = `/tmp/cronium-nbr-go-${process.pid}`;

  beforeAll(async () => {
    const { username } = await ensureTestUser();
    ensureNeighbour();
    sshd = await startSshd();
    const baseDir = path.join(sshd.dir, 'base');
    fs.mkdirSync(baseDir, { mode: 0o700 });
    execFileSync('chown', [username, baseDir]);
    t = await startApp();
    serverId = await registerServer(t, sshd, { username, baseDir });
  });
  afterAll(async () => {
    fs.writeFileSync(go, '');
    await t?.close();
    await sshd?.stop();
    fs.rmSync(go, { force: true });
  });

  const submit = async (type: string, content: string) => {
    const res = await t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .send({ targets: { serverIds: [serverId] }, helperMode: 'api', script: { type, content } });
    expect(res.status).toBe(202);
    return res.body.id as string;
  };
  /** The first stdout line of a running job, parsed as JSON. */
  const firstLine = async (id: string) => {
    for (let i = 0; i < 300; i++) {
      const line = (await logsOf(t, id)).find((l) => l.stream === 'stdout');
      if (line) return JSON.parse(line.text);
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no output from ${id}`);
  };

  it("cannot read a job's token, cannot reach its socket, and a stolen token is refused through another job's tunnel", async () => {
    const a = await submit(
      'python',
      [
        'import json, os, time',
        'print(json.dumps({"sock": os.environ.get("CRONIUM_API_SOCKET"), "pid": os.getpid(), "dir": os.getcwd()}), flush=True)',
        `while not os.path.exists(${JSON.stringify(go)}): time.sleep(0.05)`,
      ].join('\n'),
    );
    const b = await submit(
      'bash',
      `echo "{\\"ep\\":\\"$CRONIUM_API_ENDPOINT\\"}"; while [ ! -e ${go} ]; do sleep 0.05; done`,
    );
    const infoA = await firstLine(a);
    const infoB = await firstLine(b);
    expect(infoA.sock).toMatch(/\.sock$/);
    // what a leak would hand the neighbour (root reads it here)
    const env = fs.readFileSync(`/proc/${infoA.pid}/environ`, 'utf8').split('\0');
    const token = env.find((e) => e.startsWith('CRONIUM_API_TOKEN='))!.slice(18);
    expect(token.split('.')).toHaveLength(3);

    const probe = `
import json, socket, urllib.request, urllib.error
out = {}
def attempt(name, f):
    try:
        f(); out[name] = "ok"
    except PermissionError: out[name] = "denied"
    except urllib.error.HTTPError as e: out[name] = e.code
    except Exception as e: out[name] = type(e).__name__
attempt("environ", lambda: open("/proc/${infoA.pid}/environ").read())
attempt("rundir", lambda: open(${JSON.stringify(infoA.dir)} + "/env").read())
def sock():
    s = socket.socket(socket.AF_UNIX); s.connect(${JSON.stringify(infoA.sock)})
attempt("socket", sock)
def other_tunnel():
    req = urllib.request.Request(${JSON.stringify(infoB.ep)} + "/runtime/v1/input")
    req.add_header("Authorization", "Bearer " + ${JSON.stringify(token)})
    urllib.request.urlopen(req, timeout=5).read()
attempt("stolenTokenElsewhere", other_tunnel)
print(json.dumps(out))
`;
    // not execFileSync: the service under test runs in this process and must answer
    const { stdout } = await promisify(execFile)('runuser', [
      '-u',
      NEIGHBOUR,
      '--',
      'python3',
      '-c',
      probe,
    ]);
    const res = JSON.parse(stdout);
    expect(res).toEqual({
      environ: 'denied',
      rundir: 'denied',
      socket: 'denied',
      stolenTokenElsewhere: 401,
    });
    fs.writeFileSync(go, '');
    for (const id of [a, b]) {
      expect((await waitForExecution(t, id)).status).toBe('succeeded');
    }
  });
});
