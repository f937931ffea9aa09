import { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import request from 'supertest';
import { AppModule } from '../../src/app.module';
import { configureApp } from '../../src/app-setup';
import { SshdInstance } from './sshd';

export const TEST_TOKEN = 'test-token-' + 'x'.repeat(24);

export interface TestApp {
  app: INestApplication;
  url: string;
  dataDir: string;
  http: () => ReturnType<typeof request>;
  auth: { Authorization: string };
  close: () => Promise<void>;
}

/**
 * Boots the real service (real SQLite file unless DATABASE_URL is given) on a random port.
 * Config comes from process.env, like in production, with test.yaml for short retries.
 */
export async function startApp(env: Record<string, string> = {}): Promise<TestApp> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-app-'));
  const saved = { ...process.env };
  Object.assign(process.env, {
    NODE_ENV: 'test',
    CRONIUM_CONFIG: path.resolve(__dirname, '../../config/test.yaml'),
    CRONIUM_DATA_DIR: dataDir,
    CRONIUM_SERVICE_TOKENS: TEST_TOKEN,
    DATABASE_URL: '',
    ...env,
  });
  let app: INestApplication;
  try {
    app = await NestFactory.create(AppModule, { logger: ['error', 'warn'] });
    configureApp(app);
    await app.listen(0, '127.0.0.1');
  } finally {
    process.env = saved;
  }
  const url = await app.getUrl();
  return {
    app,
    url: url.replace('[::1]', '127.0.0.1'),
    dataDir,
    http: () => request(app.getHttpServer()),
    auth: { Authorization: `Bearer ${TEST_TOKEN}` },
    close: async () => {
      await app.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Registers an sshd from the harness as a server and returns its id. */
export async function registerServer(
  t: TestApp,
  sshd: SshdInstance,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const res = await t
    .http()
    .post('/v1/servers')
    .set(t.auth)
    .send({
      name: `srv-${sshd.port}-${Math.random().toString(36).slice(2, 8)}`,
      host: sshd.host,
      port: sshd.port,
      username: sshd.username,
      privateKey: sshd.key.privateKey,
      ...extra,
    });
  if (res.status !== 201)
    throw new Error(`register failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.id;
}

const TERMINAL = ['succeeded', 'failed', 'partial', 'cancelled'];

/** Polls an execution until it reaches a final status. */
export async function waitForExecution(t: TestApp, id: string, timeoutMs = 60000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await t.http().get(`/v1/executions/${id}`).set(t.auth);
    if (res.status !== 200)
      throw new Error(`GET execution: ${res.status} ${JSON.stringify(res.body)}`);
    if (TERMINAL.includes(res.body.status)) return res.body;
    if (Date.now() > deadline) throw new Error(`execution ${id} still ${res.body.status}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Waits until some target of an execution reports `status`. */
export async function waitForTargetStatus(
  t: TestApp,
  id: string,
  status: string,
  timeoutMs = 30000,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await t.http().get(`/v1/executions/${id}`).set(t.auth);
    if (res.body.targets?.some((x: any) => x.status === status)) return res.body;
    if (Date.now() > deadline)
      throw new Error(`no target reached ${status}: ${JSON.stringify(res.body)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Posts a job (202) on one server; its execution id. */
export async function submitJob(
  t: TestApp,
  serverId: string,
  body: Record<string, unknown>,
): Promise<string> {
  const res = await t
    .http()
    .post('/v1/jobs')
    .set(t.auth)
    .send({ targets: { serverIds: [serverId] }, timeoutSeconds: 30, ...body });
  if (res.status !== 202)
    throw new Error(`POST /v1/jobs: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.id;
}

/** Posts a job on one server and waits for its end; the execution and its log. */
export async function runJob(t: TestApp, serverId: string, body: Record<string, unknown>) {
  const ex = await waitForExecution(t, await submitJob(t, serverId, body));
  const logs = await logsOf(t, ex.id);
  const text = (stream: string) =>
    logs
      .filter((l) => l.stream === stream)
      .map((l) => l.text)
      .join('\n');
  return { ex, target: ex.targets[0], stdout: text('stdout'), stderr: text('stderr'), logs };
}

export async function logsOf(t: TestApp, id: string, query = ''): Promise<any[]> {
  const res = await t.http().get(`/v1/executions/${id}/logs?limit=10000${query}`).set(t.auth);
  if (res.status !== 200) throw new Error(`logs: ${res.status}`);
  return res.body.entries;
}

/**
 * The run directories under a base dir: what a finished run must not leave behind. A
 * standby runner's `.standby-<pid>` dir (the next job's, waiting for its payload) is not one.
 */
export function runDirsIn(baseDir: string): string[] {
  return fs.readdirSync(path.join(baseDir, 'runs')).filter((n) => !n.startsWith('.standby-'));
}

/**
 * Starts a job whose one target stays running in API mode (for `sleep 600`) and returns
 * its execution id and the target's execution token (the script writes it to a 0600 file
 * in `dir`), so a test can call the runtime API (runtime.loopbackPort) as that target.
 * Cancel the execution when done.
 */
export async function holdApiTarget(
  t: TestApp,
  serverId: string,
  dir: string,
  userId = 'default',
): Promise<{ id: string; token: string }> {
  const tokenFile = path.join(dir, `token-${Math.random().toString(36).slice(2)}`);
  const res = await t
    .http()
    .post('/v1/jobs')
    .set(t.auth)
    .send({
      helperMode: 'api',
      userId,
      timeoutSeconds: 600,
      script: {
        type: 'bash',
        content: `umask 077; printf %s "$CRONIUM_API_TOKEN" > ${tokenFile}.tmp; mv ${tokenFile}.tmp ${tokenFile}; sleep 600`,
      },
      targets: { serverIds: [serverId] },
    });
  if (res.status !== 202) throw new Error(`hold job: ${res.status} ${JSON.stringify(res.body)}`);
  const deadline = Date.now() + 30000;
  while (!fs.existsSync(tokenFile)) {
    if (Date.now() > deadline) throw new Error('the held target never wrote its token');
    await new Promise((r) => setTimeout(r, 25));
  }
  return { id: res.body.id, token: fs.readFileSync(tokenFile, 'utf8') };
}
