import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { registerServer, runJob, startApp, TestApp } from './support/app';
import { ensureTestUser, SshdInstance, startSshd } from './support/sshd';

/**
 * The tools the README lists as what a server needs (docs/contract.md): the runner's own
 * (sh and the coreutils it calls) and the two its safety rests on, `find` (the base dir's
 * modes) and `grep` (the processes that left the script's group, found in /proc). A server
 * without one of those two is refused before anything of the job runs; before, a missing
 * `find` passed the mode check and a missing `grep` left escaped children alive.
 */
const TOOLS = [
  'sh', 'bash', 'sha256sum', 'tar', 'mktemp', 'find', 'mkdir', 'chmod', 'mv', 'rm', 'cat',
  'mkfifo', 'tail', 'head', 'wc', 'sleep', 'setsid', 'grep', 'uname',
]; // prettier-ignore

/** A directory of symlinks to TOOLS without `omit`, readable by the test user. */
function toolDir(root: string, omit: string | null): string {
  const dir = path.join(root, `tools-${omit ?? 'all'}`);
  fs.mkdirSync(dir, { mode: 0o755 });
  for (const tool of TOOLS) {
    if (tool === omit) continue;
    const bin = execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
    fs.symlinkSync(bin, path.join(dir, tool));
  }
  return dir;
}

describe('remote tools: a server without find or grep is refused, and says which', () => {
  let t: TestApp;
  let username: string;
  const sshds: SshdInstance[] = [];

  beforeAll(async () => {
    ({ username } = await ensureTestUser());
    t = await startApp();
  });
  afterAll(async () => {
    await t?.close();
    for (const s of sshds) await s.stop();
  });

  /** An sshd whose sessions get PATH = the tool dir without `omit`, and a server on it. */
  async function serverWithout(omit: string | null) {
    // The sshd dir is made before the config is read: SetEnv names a dir made next to it.
    const root = fs.mkdtempSync(path.join('/tmp', 'cronium-tools-'));
    fs.chmodSync(root, 0o755);
    const bin = toolDir(root, omit);
    const sshd = await startSshd({ extraConfig: `SetEnv PATH=${bin}` });
    sshds.push(sshd);
    const baseDir = path.join(root, 'base');
    fs.mkdirSync(baseDir, { mode: 0o700 });
    const out = path.join(root, 'out');
    fs.mkdirSync(out, { mode: 0o700 });
    execFileSync('chown', [username, baseDir, out]);
    const serverId = await registerServer(t, sshd, { username, baseDir });
    return { serverId, marker: path.join(out, 'ran') };
  }

  /** A sleep only this suite starts, to find it in `ps` afterwards. */
  const daemon = `sleep 299.${process.pid}`;
  const alive = () => {
    try {
      return execFileSync('pgrep', ['-f', `^${daemon}$`], { encoding: 'utf8' }).trim();
    } catch {
      return ''; // pgrep exits 1 when nothing matches
    }
  };

  /** Leaves a child that escapes the group and session, as a daemon would. */
  const job = (serverId: string, marker: string) =>
    runJob(t, serverId, {
      script: { type: 'bash', content: `echo ran > ${marker}; setsid ${daemon} & echo ok` },
    });

  it('with every listed tool the job runs (the tool dir is enough)', async () => {
    const { serverId, marker } = await serverWithout(null);
    const { target, logs } = await job(serverId, marker);
    expect(target.status).toBe('succeeded');
    expect(logs.filter((l) => l.stream === 'stdout').map((l) => l.text)).toEqual(['ok']);
    expect(fs.existsSync(marker)).toBe(true);
    expect(alive()).toBe(''); // the escaped child ended with the run
  });

  it('without find: deploy_failed naming find, the script never ran', async () => {
    const { serverId, marker } = await serverWithout('find');
    const { target } = await job(serverId, marker);
    expect(target.status).toBe('failed');
    expect(target.error.code).toBe('deploy_failed');
    expect(target.error.message).toMatch(/tool missing: find/);
    expect(fs.existsSync(marker)).toBe(false);
  });

  it('without grep: runner_error naming grep, the script never ran', async () => {
    const { serverId, marker } = await serverWithout('grep');
    const { target } = await job(serverId, marker);
    expect(target.status).toBe('failed');
    expect(target.error.code).toBe('runner_error');
    expect(target.error.message).toMatch(/tool missing: grep/);
    expect(fs.existsSync(marker)).toBe(false);
  });
});
