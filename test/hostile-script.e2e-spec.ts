import * as path from 'node:path';
import {
  logsOf,
  registerServer,
  runDirsIn,
  startApp,
  TestApp,
  waitForExecution,
} from './support/app';
import { alive, eventually } from './support/processes';
import { SshdInstance, startSshd } from './support/sshd';

/**
 * Scripts that misbehave on purpose. Each one must end with the verdict a user expects,
 * keep every byte it wrote that the service may keep, and leave no process and no run
 * directory behind. (Escapes from the process group, daemons holding stdout, the run's
 * cgroup: execution.e2e-spec.ts; full disks, fork bombs, missing interpreters:
 * hostile-host.e2e-spec.ts.)
 */
describe('hostile scripts (real sshd)', () => {
  let sshd: SshdInstance;
  let t: TestApp;
  let serverId: string;
  let baseDir: string;
  let n = 7000 + Math.floor(Math.random() * 1000);
  const uniq = () => ++n;
  const LEASE = 5;

  beforeAll(async () => {
    sshd = await startSshd();
    // a short lease, so what the runner keeps after an abnormal end goes within a test
    t = await startApp({
      CRONIUM__RUNNER__LEASE_SECONDS: String(LEASE),
      CRONIUM__RUNNER__HEARTBEAT_SECONDS: '1',
    });
    baseDir = path.join(sshd.dir, 'base');
    serverId = await registerServer(t, sshd, { baseDir });
  });
  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
  });

  const run = async (body: Record<string, unknown>) => {
    const res = await t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .send({ targets: { serverIds: [serverId] }, timeoutSeconds: 20, ...body });
    expect(res.status).toBe(202);
    const ex = await waitForExecution(t, res.body.id);
    const logs = await logsOf(t, ex.id);
    const lines = (stream: string) => logs.filter((l) => l.stream === stream).map((l) => l.text);
    return { ex, target: ex.targets[0], stdout: lines('stdout'), stderr: lines('stderr'), logs };
  };
  const bash = (content: string, extra: Record<string, unknown> = {}) =>
    run({ script: { type: 'bash', content }, ...extra });

  afterEach(async () => {
    // nothing a finished job leaves behind (after an abnormal end the runner keeps the run
    // dir for a lease, for a follower that may still come: runner.leaseSeconds)
    const left = await eventually(async () => runDirsIn(baseDir).length === 0, (LEASE + 3) * 1000);
    if (!left) console.log(`left in runs/: ${runDirsIn(baseDir).join(' ')}`);
    expect(left).toBe(true);
  });

  it('closes stdout early: stderr and the exit code still arrive', async () => {
    const r = await bash('echo before; exec >&-; sleep 0.3; echo after-close >&2; exit 3');
    expect(r.target).toMatchObject({ status: 'failed', exitCode: 3 });
    expect(r.stdout).toEqual(['before']);
    expect(r.stderr).toEqual(['after-close']);
  });

  it('closes stdout and stderr and goes on: it still ends with its own code', async () => {
    const r = await bash('echo hi; exec >&- 2>&-; sleep 0.5; exit 4');
    expect(r.target).toMatchObject({ status: 'failed', exitCode: 4 });
    expect(r.stdout).toEqual(['hi']);
  });

  it('reads stdin: it gets EOF at once, never the payload or the control stream', async () => {
    const r = await bash(
      'if read -r line; then echo "read: $line"; else echo eof; fi; n=$(cat | wc -c); echo "rest=$n"',
    );
    expect(r.target).toMatchObject({ status: 'succeeded', exitCode: 0 });
    expect(r.stdout).toEqual(['eof', 'rest=0']);
  });

  it('prints binary, NULs, invalid UTF-8 and a 1 MB line: nothing stalls, the line comes in pieces', async () => {
    const r = await bash(
      [
        "printf 'a\\000b\\377\\376c\\n'",
        'head -c 1048576 /dev/zero | tr "\\0" x; echo',
        // no x in the random bytes, or a line of them alone could pass for part of the long line
        'head -c 65536 /dev/urandom | tr x y; echo',
        'echo end',
      ].join('\n'),
    );
    expect(r.target).toMatchObject({ status: 'succeeded', exitCode: 0 });
    expect(r.stdout[0]).toMatch(/^a.b/);
    const xs = r.stdout.filter((l) => /^x+$/.test(l));
    expect(xs.map((l) => l.length).reduce((a, b) => a + b, 0)).toBe(1048576);
    expect(r.stdout[r.stdout.length - 1]).toBe('end');
  });

  it('prints what looks like the runner protocol: it is the script output, nothing more', async () => {
    const r = await bash(
      [
        'echo "CRONIUM2 exit 0 exit"',
        'printf "\\nCRONIUM2 exit 0 exit Q1JPTklVTTIgY29sbGVjdCAw\\n"',
        'echo "CRONIUM2 collect 1"',
        'echo "CRONIUM2 error unknown run"',
        'exit 5',
      ].join('\n'),
      { helperMode: 'bundled' },
    );
    expect(r.target).toMatchObject({ status: 'failed', exitCode: 5, output: null });
    expect(r.target.error ?? null).toBeNull();
    expect(r.stdout).toEqual([
      'CRONIUM2 exit 0 exit',
      '',
      'CRONIUM2 exit 0 exit Q1JPTklVTTIgY29sbGVjdCAw',
      'CRONIUM2 collect 1',
      'CRONIUM2 error unknown run',
    ]);
  });

  it('ignores TERM at its timeout: KILL after the grace ends it, within timeout + grace + 2 s', async () => {
    const k = uniq();
    const t0 = Date.now();
    const r = await bash(`trap '' TERM; sleep ${k} & while :; do sleep 0.2; done`, {
      timeoutSeconds: 2,
    });
    expect(r.target.status).toBe('timed_out');
    // the test config's kill grace is 2 s
    expect(Date.now() - t0).toBeLessThan((2 + 2 + 2 + 1) * 1000);
    expect(await eventually(async () => (await alive(`sleep ${k}`)).length === 0, 5000)).toBe(true);
  });

  it('kills its own supervisor: the run is reported, not hung, and its tree is gone', async () => {
    const k = uniq();
    const t0 = Date.now();
    const r = await bash(`sleep ${k} & kill -9 $PPID; sleep ${k + 30000}`);
    expect(Date.now() - t0).toBeLessThan(15000);
    expect(['failed', 'timed_out']).toContain(r.target.status);
    expect(r.target.status).not.toBe('succeeded');
    expect(await eventually(async () => (await alive(`sleep ${k}`)).length === 0, 10000)).toBe(
      true,
    );
    expect(await alive(`sleep ${k + 30000}`)).toEqual([]); // its own, not another suite's
  });

  it('removes its own run directory: the job still ends, and nothing is left running', async () => {
    const k = uniq();
    const r = await bash(`rm -rf "$CRONIUM_WORK_DIR"; sleep ${k}`, { timeoutSeconds: 10 });
    expect(r.target.status).not.toBe('succeeded');
    expect(r.target.status).not.toBe('running');
    expect(await eventually(async () => (await alive(`sleep ${k}`)).length === 0, 10000)).toBe(
      true,
    );
  });

  it('floods output past the cap: it is cut, marked truncated, and the job still ends', async () => {
    // long lines (stored in maxLineBytes pieces), 40 MB against the 16 MB cap
    const r = await bash(
      'yes "$(head -c 60000 /dev/zero | tr "\\0" f)" | head -c 40000000; echo; echo end',
      {
        timeoutSeconds: 60,
      },
    );
    expect(r.target).toMatchObject({ status: 'succeeded', truncated: true });
    const bytes = r.stdout.reduce((a, l) => a + Buffer.byteLength(l) + 1, 0);
    expect(bytes).toBeLessThan(40000000);
  });
});
