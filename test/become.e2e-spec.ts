/**
 * `become`: a job's script runs as another user through sudo, on a real sshd with real
 * sudoers entries (ensureBecomeUsers): passwordless as BECOME_USER, and as root with the
 * SSH user's password stored as the server's write-only `becomePassword`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  logsOf,
  registerServer,
  runDirsIn,
  runJob,
  startApp,
  submitJob,
  TestApp,
  waitForExecution,
  waitForTargetStatus,
} from './support/app';
import { sample } from './support/metrics';
import { alive, eventually } from './support/processes';
import {
  BECOME_USER,
  ensureBecomeUsers,
  sh,
  SshdInstance,
  startSshd,
  TEST_USER,
} from './support/sshd';

const uniq = () => 4000 + Math.floor(Math.random() * 5000);

describe('become: the script runs as another user (sudo, real sshd)', () => {
  let sshd: SshdInstance;
  let t: TestApp;
  let password: string;
  /** passwordless sudo to BECOME_USER; root needs the password */
  let plain: string;
  /** the same, with the SSH user's sudo password stored */
  let withPassword: string;
  let wrongPassword: string;
  const baseDir = `/home/${TEST_USER}/.cache/cronium`;

  const run = (serverId: string, body: Record<string, unknown>) =>
    runJob(t, serverId, { timeoutSeconds: 60, ...body });
  // the run dir goes with the ack, just after the result
  const noRunDirs = () => eventually(async () => runDirsIn(baseDir).length === 0, 3000);
  const bash = (content: string, user?: string) => ({
    script: { type: 'bash', content },
    become: { method: 'sudo', ...(user ? { user } : {}) },
  });

  beforeAll(async () => {
    ({ password } = await ensureBecomeUsers());
    sshd = await startSshd();
    t = await startApp();
    plain = await registerServer(t, sshd, { username: TEST_USER });
    withPassword = await registerServer(t, sshd, { username: TEST_USER, becomePassword: password });
    wrongPassword = await registerServer(t, sshd, {
      username: TEST_USER,
      becomePassword: 'not-the-password',
    });
  });

  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
  });

  it('runs as the target user with its environment, passwordless', async () => {
    const r = await run(plain, {
      ...bash('echo "$(id -un) $HOME $USER $FOO"; pwd', BECOME_USER),
      env: { FOO: "a b'c" },
    });
    expect(r.target.status).toBe('succeeded');
    const [who, cwd] = r.stdout.split('\n');
    expect(who).toBe(`${BECOME_USER} /home/${BECOME_USER} ${BECOME_USER} a b'c`);
    // its own private work dir (mktemp -d), gone afterwards like the run dir
    expect(cwd).toMatch(/^\/tmp\/cronium-become\.[A-Za-z0-9]+\/[0-9a-f-]+$/);
    expect(fs.existsSync(cwd)).toBe(false);
    expect(await noRunDirs()).toBe(true);
  });

  it('with the stored becomePassword, as root by default: never on a command line, in ps, logs, the API or the database', async () => {
    const view = await t.http().get(`/v1/servers/${withPassword}`).set(t.auth);
    expect(view.body.hasBecomePassword).toBe(true);
    const list = await t.http().get('/v1/servers').set(t.auth);
    expect(JSON.stringify([view.body, list.body])).not.toContain(password);

    const n = uniq();
    const id = await submitJob(t, withPassword, bash(`id -un; sleep 2.${n}; echo done`));
    let sawSudo = false;
    while ((await t.http().get(`/v1/executions/${id}`).set(t.auth)).body.status !== 'succeeded') {
      const ps = await sh('ps -eo args');
      expect(ps.stdout).not.toContain(password);
      if (
        ps.stdout.includes(`sleep 2.${n}`) &&
        /sudo -S -k -p {2}-H -u root -- sh -c/.test(ps.stdout)
      )
        sawSudo = true;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(sawSudo).toBe(true);
    const logs = await logsOf(t, id);
    expect(logs.filter((l) => l.stream === 'stdout').map((l) => l.text)).toEqual(['root', 'done']);
    expect(JSON.stringify(logs)).not.toContain(password);
    // sealed at rest: no file of the data dir (SQLite, its WAL) holds it in the clear
    for (const f of fs.readdirSync(t.dataDir)) {
      const p = path.join(t.dataDir, f);
      if (fs.statSync(p).isFile()) expect(fs.readFileSync(p).includes(password)).toBe(false);
    }
    expect(await noRunDirs()).toBe(true);
  });

  it('a wrong sudo password is become_failed (the script never starts), counted; a failing script is not', async () => {
    const marker = `/tmp/cronium-become-ran-${process.pid}`;
    const before = sample((await t.http().get('/metrics')).text, 'cronium_become_failures_total');
    const r = await run(wrongPassword, bash(`touch ${marker}; exit 3`));
    expect(r.target.status).toBe('failed');
    expect(r.target.error.code).toBe('become_failed');
    expect(r.target.error.message).toMatch(/sudo refused to run the script as root/);
    expect(r.stderr).toMatch(/cronium: become root: sudo refused: .*incorrect password/s);
    expect(fs.existsSync(marker)).toBe(false);
    // no password and a rule that wants one: the same
    const none = await run(plain, bash(`touch ${marker}`, 'root'));
    expect(none.target.error.code).toBe('become_failed');
    expect(none.stderr).toMatch(/a password is required/);
    expect(fs.existsSync(marker)).toBe(false);
    const after = sample((await t.http().get('/metrics')).text, 'cronium_become_failures_total');
    expect(after - before).toBe(2);

    const own = await run(withPassword, bash('exit 3'));
    expect(own.target.status).toBe('failed');
    expect(own.target.exitCode).toBe(3);
    expect(own.target.error ?? null).toBeNull();
  });

  it('timeout kills the whole tree of the other user, what left the group too', async () => {
    const n = uniq();
    const r = await run(plain, {
      ...bash(`sleep 30${n} & setsid sleep 31${n} & echo started; sleep 32${n}`, BECOME_USER),
      timeoutSeconds: 2,
    });
    expect(r.target.status).toBe('timed_out');
    expect(r.stdout).toBe('started');
    expect(await eventually(async () => (await alive(`sleep 3[012]${n}`)).length === 0)).toBe(true);
    expect(await noRunDirs()).toBe(true);
  });

  it('cancel kills the whole tree of root', async () => {
    const n = uniq();
    const id = await submitJob(t, withPassword, {
      ...bash(`sleep 40${n} & setsid sleep 41${n} & sleep 42${n}`),
      timeoutSeconds: 60,
    });
    await waitForTargetStatus(t, id, 'running');
    const started = await eventually(async () => (await alive(`sleep 4[012]${n}`)).length === 3);
    expect({ started, seen: await alive(`sleep 4[012]${n}`) }).toMatchObject({ started: true });
    const owners = await sh(`ps -o user= -p $(pgrep -d, -f 'sleep 4[012]${n}')`);
    expect(owners.stdout.trim().split('\n')).toEqual(['root', 'root', 'root']);
    expect((await t.http().post(`/v1/executions/${id}/cancel`).set(t.auth)).status).toBe(202);
    const ex = await waitForExecution(t, id);
    expect(ex.targets[0].status).toBe('cancelled');
    const gone = await eventually(async () => (await alive(`sleep 4[012]${n}`)).length === 0);
    expect({ gone, left: await alive(`sleep 4[012]${n}`) }).toEqual({ gone: true, left: [] });
  });

  it('runtime helpers are not available as another user: each call says so (bash, python)', async () => {
    const b = await run(plain, bash('cronium.input; echo "rc=$?"', BECOME_USER));
    expect(b.stdout).toBe('rc=127');
    expect(b.stderr).toContain(
      'cronium: cronium.input: runtime helpers are not available to a script run as another user (become)',
    );
    const p = await run(plain, {
      script: { type: 'python', content: 'cronium.output({"a": 1})\n' },
      become: { method: 'sudo', user: BECOME_USER },
    });
    expect(p.target.status).toBe('failed');
    expect(p.stderr).toContain(
      'RuntimeError: cronium.output: runtime helpers are not available to a script run as another user (become)',
    );
  });

  it('refuses a become.user that is not a user name (400 naming it, nothing runs); an unknown user is become_failed', async () => {
    const marker = `/tmp/cronium-become-bad-${process.pid}`;
    for (const user of [`root; touch ${marker}`, `$(touch ${marker})`, 'Root', '-s'] as const) {
      const res = await t
        .http()
        .post('/v1/jobs')
        .set(t.auth)
        .send({ targets: { serverIds: [plain] }, ...bash('true', user) });
      expect([res.status, res.body.message]).toEqual([
        400,
        expect.stringMatching(/^become\.user /),
      ]);
    }
    const r = await run(plain, bash(`touch ${marker}`, 'no-such-user'));
    expect(r.target.error.code).toBe('become_failed');
    expect(r.stderr).toMatch(/unknown user/);
    expect(fs.existsSync(marker)).toBe(false);
  });

  it('is in the OpenAPI document: become on jobs, write-only becomePassword, hasBecomePassword', async () => {
    const { schemas } = (await t.http().get('/docs/json')).body.components;
    expect(schemas.CreateJobDto.properties.become).toBeDefined();
    expect(schemas.BecomeDto.properties.method.enum).toEqual(['sudo']);
    expect(schemas.BecomeDto.properties.user).toMatchObject({ default: 'root' });
    expect(schemas.CreateServerDto.properties.becomePassword.writeOnly).toBe(true);
    expect(schemas.UpdateServerDto.properties.becomePassword.writeOnly).toBe(true);
    expect(schemas.ServerView.properties.hasBecomePassword.type).toBe('boolean');
    expect(schemas.ServerView.properties.becomePassword).toBeUndefined();
  });

  it('becomePassword is write-only and can be removed', async () => {
    const patched = await t
      .http()
      .patch(`/v1/servers/${wrongPassword}`)
      .set(t.auth)
      .send({ becomePassword: null });
    expect(patched.status).toBe(200);
    expect(patched.body.hasBecomePassword).toBe(false);
    expect(Object.keys(patched.body)).not.toContain('becomePassword');
    const set = await t
      .http()
      .patch(`/v1/servers/${wrongPassword}`)
      .set(t.auth)
      .send({ becomePassword: password });
    expect(set.body.hasBecomePassword).toBe(true);
    expect(JSON.stringify(set.body)).not.toContain(password);
    expect((await run(wrongPassword, bash('id -un'))).stdout).toBe('root');
  });
});
