import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { registerServer, runJob, startApp, TestApp } from './support/app';
import { alive } from './support/processes';
import { ensureTestUser, SshdInstance, startSshd } from './support/sshd';

/**
 * What leaves the script's process group and session is found by the run's mark
 * (CRONIUM_RUN_ID in its environment) and killed when the run ends (docs/runner-protocol.md,
 * "The end of a run"). Since runner 2.1.3 the sweep reads only the processes made since the
 * go line (pids above the last pid handed out before it), unless the pids may have wrapped
 * round since the standby. These jobs run as an unprivileged user with no cgroup of the run
 * (the harness's root jobs have one, which would kill the escapees on its own), so the sweep
 * is all there is.
 */
describe('the sweep of escaped processes, as a user without a cgroup of the run', () => {
  let t: TestApp;
  let sshd: SshdInstance;
  let serverId: string;
  let root: string;
  const tag = `${process.pid}`;

  beforeAll(async () => {
    const { username } = await ensureTestUser();
    t = await startApp();
    sshd = await startSshd();
    root = fs.mkdtempSync(path.join('/tmp', 'cronium-sweep-'));
    fs.chmodSync(root, 0o755);
    const baseDir = path.join(root, 'base');
    fs.mkdirSync(baseDir, { mode: 0o700 });
    execFileSync('chown', [username, baseDir]);
    serverId = await registerServer(t, sshd, { username, baseDir });
  });
  afterAll(async () => {
    execFileSync('sh', ['-c', `pkill -f '^sleep 29[0-9]\\.${tag}$' || true`]);
    await t?.close();
    await sshd?.stop();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  /** The sleeps of this suite with the given marks (`sleep 29N.<pid>`) still running. */
  const survivors = (marks: number[]) => alive(`^sleep (${marks.join('|')})\\.${tag}$`);

  it('kills every kind of escapee when the script just ends', async () => {
    const { target, stdout } = await runJob(t, serverId, {
      script: {
        type: 'bash',
        content: [
          `setsid -f sleep 291.${tag}`,
          `( setsid sleep 292.${tag} & )`,
          `nohup setsid sh -c 'sleep 293.${tag}' >/dev/null 2>&1 &`,
          // a python daemon: double fork, new session
          `python3 -c 'import os,sys
if os.fork(): sys.exit(0)
os.setsid()
if os.fork(): sys.exit(0)
os.execvp("sleep", ["sleep", "294.${tag}"])'`,
          'sleep 0.3',
          'echo done',
        ].join('\n'),
      },
    });
    expect(target.status).toBe('succeeded');
    expect(stdout).toBe('done');
    expect(await survivors([291, 292, 293, 294])).toEqual([]);
  });

  // Forcing a wrap takes pid_max new tasks: ~3 s of threads at the kernel's default 32768
  // (this machine kind's and CI's); where pid_max is raised (systemd sets 4194304) a lap
  // would take minutes, and these two do not run.
  const pidMax = Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  const lapIsCheap = pidMax <= 131072;

  /**
   * A python script that burns pids with threads until they have wrapped round below its
   * own start, leaves an escapee there (a pid below the go line's), then, with `lap`, burns on
   * until the last pid is above where it started again: a whole lap, which only the fork count
   * gives away.
   */
  const storm = (mark: number, lap: boolean) => `import subprocess, threading
def last():
    with open('/proc/loadavg') as f:
        return int(f.read().split()[4])
start = last()
def burn(cond):
    n = 0
    while not cond():
        t = threading.Thread(target=int); t.start(); t.join()
        n += 1
        if n > ${3 * pidMax}: raise SystemExit('pids did not wrap')
burn(lambda: last() < start)
e = subprocess.Popen(['sleep', '${mark}.${tag}'], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
${lap ? 'burn(lambda: last() > start)' : ''}
print(start, e.pid, last(), flush=True)
`;

  /** Runs the storm; the pids it printed: its start, the escapee's and the last at its end. */
  async function stormJob(mark: number, lap: boolean) {
    const { target, stdout, stderr } = await runJob(t, serverId, {
      script: { type: 'python', content: storm(mark, lap) },
    });
    expect([target.status, stderr]).toEqual(['succeeded', '']);
    const [start, escapee, end] = stdout.split(' ').map(Number);
    expect(escapee).toBeLessThan(start);
    return { start, end };
  }

  (lapIsCheap ? it : it.skip)(
    'pids wrapped round during the job: the escapee below the go line still ends with the run',
    async () => {
      const { start, end } = await stormJob(295, false);
      expect(end).toBeLessThan(start); // the last pid is below the go line's
      expect(await survivors([295])).toEqual([]);
    },
    60_000,
  );

  (lapIsCheap ? it : it.skip)(
    'a whole lap of pids during the job: the fork count tells, and the escapee still ends',
    async () => {
      const { start, end } = await stormJob(296, true);
      expect(end).toBeGreaterThan(start); // pids alone look as if nothing wrapped
      expect(await survivors([296])).toEqual([]);
    },
    60_000,
  );
});
