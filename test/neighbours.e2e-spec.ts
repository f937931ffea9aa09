import { execFileSync } from 'node:child_process';
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
