import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  logsOf,
  registerServer,
  runDirsIn,
  startApp,
  TestApp,
  waitForExecution,
} from './support/app';
import { ensureTestUser, SshdInstance, startSshd } from './support/sshd';

/** Posts a job on one server and waits for its end; the execution and its log. */
async function runJob(t: TestApp, serverId: string, body: Record<string, unknown>) {
  const res = await t
    .http()
    .post('/v1/jobs')
    .set(t.auth)
    .send({ targets: { serverIds: [serverId] }, timeoutSeconds: 30, ...body });
  if (res.status !== 202)
    throw new Error(`POST /v1/jobs: ${res.status} ${JSON.stringify(res.body)}`);
  const ex = await waitForExecution(t, res.body.id);
  const logs = await logsOf(t, ex.id);
  const text = (stream: string) =>
    logs
      .filter((l) => l.stream === stream)
      .map((l) => l.text)
      .join('\n');
  return { ex, target: ex.targets[0], stdout: text('stdout'), stderr: text('stderr') };
}

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
