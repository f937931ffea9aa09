import { createHmac, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import { newExecution } from '../src/executions/execution-factory';
import type { ExecutionRequestSummary } from '../src/executions/request';
import { NotificationEntity } from '../src/persistence/entities';
import { ExecutionsRepository } from '../src/persistence/executions.repository';
import { registerServer, startApp, TestApp, waitForExecution } from './support/app';
import { sample } from './support/metrics';
import { freshSchema } from './support/postgres';
import { SshdInstance, startSshd } from './support/sshd';

interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  raw: Buffer;
}

/** A real HTTP receiver on loopback; `reply` decides each answer (or never answers). */
async function startReceiver(
  reply: (r: Received, n: number, res: http.ServerResponse) => void = (_r, _n, res) =>
    res.writeHead(200).end('ok'),
) {
  const got: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = { path: req.url ?? '', headers: req.headers, raw: Buffer.concat(chunks) };
      got.push(r);
      reply(r, got.length, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    got,
    port,
    url: (p = '/hook') => `http://127.0.0.1:${port}${p}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
type Receiver = Awaited<ReturnType<typeof startReceiver>>;

const FAST = {
  CRONIUM__NOTIFICATIONS__ALLOW_LIST: '127.0.0.1',
  CRONIUM__NOTIFICATIONS__MAX_ATTEMPTS: '3',
  CRONIUM__NOTIFICATIONS__BACKOFF: '{"initialDelayMs":50,"factor":2,"maxDelayMs":200}',
  CRONIUM__NOTIFICATIONS__TIMEOUT_MS: '1000',
  CRONIUM__NOTIFICATIONS__POLL_INTERVAL_MS: '100',
};

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 30000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function notificationsOf(t: TestApp, id: string) {
  const res = await t.http().get(`/v1/executions/${id}/notifications`).set(t.auth);
  expect(res.status).toBe(200);
  return res.body;
}

/** The notification once it is delivered or failed. */
function settled(t: TestApp, id: string) {
  return until(`notification of ${id} to settle`, async () => {
    const b = await notificationsOf(t, id);
    const n = b.items[0];
    return n && ['delivered', 'failed'].includes(n.status) ? n : undefined;
  });
}

async function submit(t: TestApp, serverId: string, extra: Record<string, unknown>) {
  const res = await t
    .http()
    .post('/v1/jobs')
    .set(t.auth)
    .send({
      script: { type: 'bash', content: 'echo done' },
      targets: { serverIds: [serverId] },
      ...extra,
    });
  return res;
}

describe('completion notifications', () => {
  let sshd: SshdInstance;
  let t: TestApp;
  let serverId: string;
  let receivers: Receiver[] = [];

  beforeAll(async () => {
    sshd = await startSshd();
    t = await startApp(FAST);
    serverId = await registerServer(t, sshd, { baseDir: `${sshd.dir}/base` });
  });
  afterEach(async () => {
    await Promise.all(receivers.map((r) => r.close()));
    receivers = [];
  });
  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
  });
  const receiver = async (reply?: Parameters<typeof startReceiver>[0]) => {
    const r = await startReceiver(reply);
    receivers.push(r);
    return r;
  };

  it('POSTs the summary once, signed over the exact bytes, with a delivery id', async () => {
    const r = await receiver();
    const secret = 'notify-secret-' + Math.random().toString(36).slice(2);
    const before = sample(
      (await t.http().get('/metrics')).text,
      'cronium_notification_deliveries_total',
      'result="delivered"',
    );
    const res = await submit(t, serverId, { notify: { url: r.url('/hook?token=q1'), secret } });
    expect(res.status).toBe(202);
    const id = res.body.id;
    const execution = await waitForExecution(t, id);
    const n = await settled(t, id);

    expect(n.status).toBe('delivered');
    expect(r.got).toHaveLength(1);
    const got = r.got[0];
    expect(got.path).toBe('/hook?token=q1');
    expect(got.headers['content-type']).toBe('application/json');
    expect(got.headers['x-cronium-delivery']).toBe(n.deliveryId);
    expect(Number(got.headers['x-cronium-timestamp'])).toBeGreaterThan(0);
    const hmac = createHmac('sha256', secret).update(got.raw).digest('hex');
    expect(got.headers['x-cronium-signature']).toBe(`sha256=${hmac}`);
    const body = JSON.parse(got.raw.toString('utf8'));
    expect(body).toMatchObject({ deliveryId: n.deliveryId, event: 'execution.finished' });
    expect(body.execution).toMatchObject({ id, status: 'succeeded', summary: execution.summary });
    expect(body.execution.targets[0]).toMatchObject({ serverId, status: 'succeeded', exitCode: 0 });

    expect(n).toMatchObject({ url: r.url('/hook'), signed: true, nextAttemptAt: null });
    expect(n.attempts).toEqual([
      {
        attempt: 1,
        at: expect.any(String),
        httpStatus: 200,
        error: null,
        durationMs: expect.any(Number),
      },
    ]);
    // The secret is sealed at rest and never shown.
    const view = JSON.stringify(await notificationsOf(t, id));
    expect(view).not.toContain(secret);
    expect(view).not.toContain('q1');
    expect(
      JSON.stringify((await t.http().get(`/v1/executions/${id}`).set(t.auth)).body),
    ).not.toContain(secret);
    const rows = await t.app.get(DataSource).query('SELECT * FROM notifications');
    expect(JSON.stringify(rows)).not.toContain(secret);
    const after = sample(
      (await t.http().get('/metrics')).text,
      'cronium_notification_deliveries_total',
      'result="delivered"',
    );
    expect(after - before).toBe(1);
    // Once: later polls send nothing more.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(r.got).toHaveLength(1);
  });

  it("a rerun notifies too, at the original's URL and signed with its secret", async () => {
    const r = await receiver();
    const secret = 'rerun-secret-' + Math.random().toString(36).slice(2);
    const res = await submit(t, serverId, {
      script: { type: 'bash', content: 'exit 3' },
      notify: { url: r.url('/again'), secret },
    });
    await waitForExecution(t, res.body.id);
    await settled(t, res.body.id);
    const again = await t
      .http()
      .post(`/v1/executions/${res.body.id}/rerun`)
      .set(t.auth)
      .send({ only: 'failed' });
    expect(again.status).toBe(202);
    await waitForExecution(t, again.body.id);
    const n = await settled(t, again.body.id);
    expect(n).toMatchObject({ status: 'delivered', url: r.url('/again'), signed: true });
    expect(r.got).toHaveLength(2);
    const got = r.got[1];
    expect(got.headers['x-cronium-delivery']).toBe(n.deliveryId);
    const hmac = createHmac('sha256', secret).update(got.raw).digest('hex');
    expect(got.headers['x-cronium-signature']).toBe(`sha256=${hmac}`);
    expect(JSON.parse(got.raw.toString('utf8')).execution).toMatchObject({
      id: again.body.id,
      rerunOf: res.body.id,
    });
  });

  it('a failing receiver is retried with backoff up to maxAttempts, every attempt visible', async () => {
    const r = await receiver((_r, _n, res) => res.writeHead(503).end('down for maintenance'));
    const metrics = async () => {
      const text = (await t.http().get('/metrics')).text;
      const s = (result: string) =>
        sample(text, 'cronium_notification_deliveries_total', `result="${result}"`);
      return { retrying: s('retrying'), failed: s('failed') };
    };
    const before = await metrics();
    const res = await submit(t, serverId, { notify: { url: r.url() } });
    const execution = await waitForExecution(t, res.body.id);
    expect(execution.status).toBe('succeeded');
    const n = await settled(t, res.body.id);
    expect(n.status).toBe('failed');
    expect(n.signed).toBe(false);
    expect(n.attempts.map((a: any) => [a.attempt, a.httpStatus, a.error])).toEqual([
      [1, 503, 'HTTP 503'],
      [2, 503, 'HTTP 503'],
      [3, 503, 'HTTP 503'],
    ]);
    const at = n.attempts.map((a: any) => Date.parse(a.at));
    expect(at[1]).toBeGreaterThan(at[0]);
    expect(at[2]).toBeGreaterThan(at[1]);
    expect(r.got).toHaveLength(3);
    expect(new Set(r.got.map((g) => g.headers['x-cronium-delivery'])).size).toBe(1);
    expect(r.got.map((g) => g.headers['x-cronium-attempt'])).toEqual(['1', '2', '3']);
    expect(r.got[0].headers['x-cronium-signature']).toBeUndefined();
    expect(new Set(r.got.map((g) => g.raw.toString('hex'))).size).toBe(1); // the same bytes
    const after = await metrics();
    expect(after.retrying - before.retrying).toBe(2);
    expect(after.failed - before.failed).toBe(1);
  });

  it('a receiver that never answers does not hold the execution: the attempt times out', async () => {
    const r = await receiver(() => undefined); // never answers
    const res = await submit(t, serverId, { notify: { url: r.url() } });
    const execution = await waitForExecution(t, res.body.id);
    expect(execution.status).toBe('succeeded');
    const n = await settled(t, res.body.id);
    expect(n.status).toBe('failed');
    expect(n.attempts[0]).toMatchObject({ httpStatus: null, error: 'no response within 1000 ms' });
    // The execution had ended before the first attempt even started.
    expect(Date.parse(execution.finishedAt)).toBeLessThanOrEqual(Date.parse(n.attempts[0].at));
    expect(r.got).toHaveLength(3);
  });

  it('a receiver that is down (connection refused) fails its attempts, not the job', async () => {
    const r = await receiver();
    const url = r.url();
    await r.close();
    const res = await submit(t, serverId, { notify: { url } });
    expect((await waitForExecution(t, res.body.id)).status).toBe('succeeded');
    const n = await settled(t, res.body.id);
    expect(n.status).toBe('failed');
    expect(n.attempts.map((a: any) => a.error)).toEqual([
      'ECONNREFUSED',
      'ECONNREFUSED',
      'ECONNREFUSED',
    ]);
  });

  it('redirects are not followed', async () => {
    const r = await receiver((got, _n, res) =>
      got.path === '/hook'
        ? res.writeHead(307, { Location: r.url('/elsewhere') }).end()
        : res.writeHead(200).end(),
    );
    const res = await submit(t, serverId, { notify: { url: r.url() } });
    const n = await settled(t, res.body.id);
    expect(n.status).toBe('failed');
    expect(n.attempts[0]).toMatchObject({
      httpStatus: 307,
      error: 'HTTP 307: redirects are not followed',
    });
    expect(r.got.map((g) => g.path)).toEqual(['/hook', '/hook', '/hook']);
  });

  it('a URL outside the allow list is a 400 naming notify.url; nothing is stored or run', async () => {
    const ds = t.app.get(DataSource);
    const count = async () => Number((await ds.query('SELECT COUNT(*) AS n FROM executions'))[0].n);
    const before = await count();
    const res = await submit(t, serverId, { notify: { url: 'http://localhost:1/hook' } });
    expect(res.status).toBe(400);
    expect(res.body.message).toBe(
      'notify.url http://localhost:1/hook is not in notifications.allowList',
    );
    expect(await count()).toBe(before);
  });

  it('without notify the list is empty; an unknown execution is a 404', async () => {
    const res = await submit(t, serverId, {});
    await waitForExecution(t, res.body.id);
    expect(await notificationsOf(t, res.body.id)).toEqual({ executionId: res.body.id, items: [] });
    const missing = await t
      .http()
      .get('/v1/executions/00000000-0000-4000-8000-000000000000/notifications')
      .set(t.auth);
    expect(missing.status).toBe(404);
  });
});

describe('notifications: allow list empty by default', () => {
  it('any notify is a 400 saying notifications.allowList is empty', async () => {
    const t = await startApp();
    try {
      const res = await t
        .http()
        .post('/v1/jobs')
        .set(t.auth)
        .send({
          script: { type: 'bash', content: 'true' },
          targets: { serverIds: ['00000000-0000-4000-8000-000000000000'] },
          notify: { url: 'http://127.0.0.1:9/hook' },
        });
      expect(res.status).toBe(400);
      expect(res.body.message).toContain('notifications.allowList is empty');
    } finally {
      await t.close();
    }
  });
});

describe('notifications across restarts and replicas', () => {
  let sshd: SshdInstance;
  let dir: string;
  const KEY = 'a'.repeat(64);

  beforeAll(async () => {
    sshd = await startSshd();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-notify-'));
  });
  afterAll(async () => {
    await sshd?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  /** One SQLite file across restarts, and one secrets key (the sealed notify secret opens). */
  const sqliteEnv = (file: string) => ({
    ...FAST,
    DATABASE_URL: `sqlite:${path.join(dir, file)}`,
    CRONIUM_SECRETS_KEY: KEY,
  });

  it('an attempt cut off by a restart resumes on the next start; a delivered one is never resent', async () => {
    let answer = false;
    const r = await startReceiver((_r, _n, res) => {
      if (answer) res.writeHead(200).end('ok'); // until then: hang, as a slow receiver does
    });
    const env = { ...sqliteEnv('restart.db'), CRONIUM__NOTIFICATIONS__TIMEOUT_MS: '60000' };
    try {
      let t = await startApp(env);
      const serverId = await registerServer(t, sshd, { baseDir: `${sshd.dir}/base` });
      const res = await submit(t, serverId, { notify: { url: r.url(), secret: 's3cret' } });
      await waitForExecution(t, res.body.id);
      await until('the first attempt to arrive', async () => r.got.length === 1);
      await t.close(); // mid-attempt
      answer = true;

      t = await startApp(env);
      const n = await settled(t, res.body.id);
      expect(n.status).toBe('delivered');
      expect(n.attempts.map((a: any) => [a.attempt, a.httpStatus, a.error])).toEqual([
        [1, null, 'interrupted: the service stopped'],
        [2, 200, null],
      ]);
      expect(r.got).toHaveLength(2);
      expect(r.got[1].headers['x-cronium-delivery']).toBe(r.got[0].headers['x-cronium-delivery']);
      expect(r.got[1].raw.equals(r.got[0].raw)).toBe(true);
      const hmac = createHmac('sha256', 's3cret').update(r.got[1].raw).digest('hex');
      expect(r.got[1].headers['x-cronium-signature']).toBe(`sha256=${hmac}`);
      await t.close();

      t = await startApp(env);
      await new Promise((resolve) => setTimeout(resolve, 600)); // several polls
      expect(r.got).toHaveLength(2);
      await t.close();
    } finally {
      await r.close();
    }
  });

  it('a claim left by a replica that died mid-attempt is taken back and delivered once', async () => {
    const r = await startReceiver();
    const t = await startApp(sqliteEnv('stale.db'));
    try {
      // As a replica leaves it that claimed the first attempt long ago and died sending it.
      const execution = newExecution({ request: {} as ExecutionRequestSummary });
      await t.app.get(ExecutionsRepository).create(
        {
          ...execution,
          status: 'succeeded',
          finishedAt: Date.now(),
        },
        [],
      );
      await t.app.get(DataSource).getRepository(NotificationEntity).insert({
        id: randomUUID(),
        executionId: execution.id,
        url: r.url(),
        secret: null,
        status: 'sending',
        body: '{"event":"execution.finished"}',
        attempts: 1,
        nextAttemptAt: 1,
        claimedBy: 'dead-replica',
        claimedAt: 1,
        createdAt: 1,
      });
      const n = await settled(t, execution.id);
      expect(n.status).toBe('delivered');
      expect(n.attempts.map((a: any) => [a.attempt, a.httpStatus, a.error])).toEqual([
        [1, null, 'interrupted: the replica sending it stopped'],
        [2, 200, null],
      ]);
      expect(r.got.map((g) => g.raw.toString())).toEqual(['{"event":"execution.finished"}']);
    } finally {
      await t.close();
      await r.close();
    }
  });

  it('two replicas on one PostgreSQL database deliver each notification exactly once', async () => {
    const r = await startReceiver();
    const s = await freshSchema();
    const env = {
      ...FAST,
      CRONIUM__NOTIFICATIONS__POLL_INTERVAL_MS: '50',
      DATABASE_URL: s.url,
      CRONIUM_SECRETS_KEY: KEY,
    };
    const a = await startApp({ ...env, CRONIUM_REPLICA_ID: 'replica-a' });
    const b = await startApp({ ...env, CRONIUM_REPLICA_ID: 'replica-b' });
    try {
      const serverId = await registerServer(a, sshd, { baseDir: `${sshd.dir}/base` });
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) {
        const app = i % 2 ? a : b;
        const res = await submit(app, serverId, { notify: { url: r.url(`/hook/${i}`) } });
        expect(res.status).toBe(202);
        ids.push(res.body.id);
      }
      for (const id of ids) {
        const n = await settled(a, id);
        expect(n.status).toBe('delivered');
        expect(n.attempts).toHaveLength(1);
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(r.got.map((g) => g.path).sort()).toEqual(ids.map((_x, i) => `/hook/${i}`).sort());
    } finally {
      await a.close();
      await b.close();
      await s.drop();
      await r.close();
    }
  });
});
