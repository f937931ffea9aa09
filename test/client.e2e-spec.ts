import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import WebSocket from 'ws';
import { createCroniumClient, CroniumClient, ExecutionView, LogPage } from '../src/client';
import { CLIENT_SCHEMA_FILE, clientSource } from '../src/openapi/client-source';
import { startApp, TEST_TOKEN, TestApp } from './support/app';
import { isFinal } from './support/service-process';
import { SshdInstance, startSshd } from './support/sshd';

/*
 * The service driven through the generated client (src/client): a request or response
 * that no longer matches the document breaks the type check of this file, a behaviour
 * that no longer matches it breaks an assertion.
 */
describe('the generated typed client against the real service (real sshd)', () => {
  let sshd: SshdInstance;
  let t: TestApp;
  let api: CroniumClient;
  let serverId: string;
  let serverName: string;
  let endedId: string;

  beforeAll(async () => {
    sshd = await startSshd();
    t = await startApp();
    api = createCroniumClient(t.url, TEST_TOKEN);
    serverName = `client-${sshd.port}`;
    const created = await api.POST('/v1/servers', {
      body: {
        name: serverName,
        host: sshd.host,
        port: sshd.port,
        username: sshd.username,
        privateKey: sshd.key.privateKey,
        tags: ['client-e2e'],
      },
    });
    expect(created.response.status).toBe(201);
    serverId = created.data!.id;
    expect(created.data).toMatchObject({ name: serverName, authType: 'key', baseDir: null });
  });

  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
  });

  /** The logs route answers JSON unless asked for text: the type is the union of both. */
  const page = (body: LogPage | string | undefined): LogPage => {
    if (typeof body !== 'object') throw new Error(`expected a JSON log page, got ${body}`);
    return body;
  };

  /** Long-polls GET /v1/executions/{id}?wait= until the execution has ended. */
  async function waitForEnd(id: string): Promise<ExecutionView> {
    const deadline = Date.now() + 100_000;
    for (;;) {
      const { data, response } = await api.GET('/v1/executions/{id}', {
        params: { path: { id }, query: { wait: 10 } },
      });
      expect(response.status).toBe(200);
      if (isFinal(data!.status)) return data!;
      if (Date.now() > deadline) throw new Error(`execution ${id} still ${data!.status}`);
    }
  }

  it('serves, without a token, the OpenAPI document the checked-in client was generated from, and the AsyncAPI one', async () => {
    const served = await fetch(`${t.url}/docs/json`);
    expect(served.status).toBe(200);
    expect(fs.readFileSync(CLIENT_SCHEMA_FILE, 'utf8')).toBe(
      await clientSource(await served.json()),
    );
    const asyncapi = await fetch(`${t.url}/docs/asyncapi.json`);
    expect(asyncapi.status).toBe(200);
    expect(await asyncapi.json()).toMatchObject({
      asyncapi: '3.0.0',
      channels: { status: { address: '/v1/status' } },
    });
  });

  it('runs a job by tag, waits for it with ?wait= and reads its log as JSON and as text', async () => {
    const job = await api.POST('/v1/jobs', {
      body: {
        name: 'client-e2e',
        script: { type: 'bash', content: 'echo hello; echo oops >&2; exit 3' },
        targets: { tags: ['client-e2e'] },
        input: [1, 'two', null],
        timeoutSeconds: 100,
      },
    });
    expect(job.response.status).toBe(202);
    expect(job.data!.targets.map((x) => x.serverId)).toEqual([serverId]);

    const ex = await waitForEnd(job.data!.id);
    endedId = ex.id;
    expect({ status: ex.status, target: ex.targets[0] }).toMatchObject({ status: 'failed' });
    expect(ex.summary).toEqual({
      total: 1,
      succeeded: 0,
      failed: 1,
      timedOut: 0,
      cancelled: 0,
      skipped: 0,
    });
    expect(ex.targets[0]).toMatchObject({ serverName, status: 'failed', exitCode: 3 });
    expect(Number.isInteger(ex.targets[0].durationMs)).toBe(true);

    const res = await api.GET('/v1/executions/{id}/logs', { params: { path: { id: ex.id } } });
    expect(res.response.status).toBe(200);
    const logs = { data: page(res.data) };
    const lines = logs.data.entries.filter((e) => e.stream !== 'system');
    // Two pipes: the order between stdout and stderr is not fixed, within each it is.
    expect(lines.map((e) => [e.stream, e.text]).sort()).toEqual([
      ['stderr', 'oops'],
      ['stdout', 'hello'],
    ]);
    expect(logs.data.nextSeq).toBe(logs.data.entries[logs.data.entries.length - 1].seq);
    const after = await api.GET('/v1/executions/{id}/logs', {
      params: { path: { id: ex.id }, query: { afterSeq: logs.data.nextSeq } },
    });
    expect(page(after.data)).toEqual({ entries: [], nextSeq: logs.data.nextSeq });

    const text = await api.GET('/v1/executions/{id}/logs', {
      params: { path: { id: ex.id }, query: { format: 'text' } },
      parseAs: 'text',
    });
    expect(text.response.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(text.data).toContain(`[${serverName}] hello\n`);
  });

  it('replays an ended execution over the websocket as the AsyncAPI document describes it', async () => {
    const asyncapi = await (await fetch(`${t.url}/docs/asyncapi.json`)).json();
    const kinds: any[] = asyncapi.components.messages.update.payload.properties.data.oneOf;
    const byType = new Map(kinds.map((k) => [k.properties.type.const, k]));
    const ws = new WebSocket(`${t.url.replace(/^http/, 'ws')}/v1/status`, {
      headers: { Authorization: `Bearer ${TEST_TOKEN}` },
    });
    const messages: any[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.on('open', () =>
        ws.send(JSON.stringify({ event: 'subscribe', data: { executionId: endedId } })),
      );
      ws.on('message', (raw) => {
        const m = JSON.parse(String(raw));
        messages.push(m);
        if (m.event !== 'update' || m.data.type === 'end') resolve();
      });
      ws.on('error', reject);
    });
    ws.close();
    expect(messages.every((m) => m.event === 'update')).toBe(true);
    const updates = messages.map((m) => m.data);
    expect(new Set(updates.map((u) => u.type))).toEqual(
      new Set(['status', 'log', 'result', 'summary', 'end']),
    );
    for (const u of updates) {
      const kind = byType.get(u.type);
      const missing = kind.required.filter((f: string) => !(f in u));
      const offList = Object.entries<any>(kind.properties)
        .filter(([f, schema]) => schema.enum && f in u && !schema.enum.includes(u[f]))
        .map(([f]) => `${f}=${u[f]}`);
      expect({ type: u.type, missing, offList }).toEqual({
        type: u.type,
        missing: [],
        offList: [],
      });
    }
  });

  it('sends the idempotency key only when given: a retry with it answers with the same execution', async () => {
    const body = {
      script: { type: 'bash' as const, content: 'true' },
      targets: { serverIds: [serverId] },
    };
    const key = `client-e2e-${randomUUID()}`;
    const first = await api.POST('/v1/jobs', {
      body,
      params: { header: { 'idempotency-key': key } },
    });
    const retry = await api.POST('/v1/jobs', {
      body,
      params: { header: { 'idempotency-key': key } },
    });
    const other = await api.POST('/v1/jobs', { body });
    expect([first.response.status, retry.response.status, other.response.status]).toEqual([
      202, 202, 202,
    ]);
    expect(retry.data!.id).toBe(first.data!.id);
    expect(other.data!.id).not.toBe(first.data!.id);
    const mismatch = await api.POST('/v1/jobs', {
      body: { ...body, name: 'another' },
      params: { header: { 'idempotency-key': key } },
    });
    expect(mismatch.response.status).toBe(422);
    expect(mismatch.error?.message).toBe(
      'Idempotency-Key was already used with a different request body',
    );
    for (const id of [first.data!.id, other.data!.id]) await waitForEnd(id);
  });

  it('gives typed ErrorBody errors: 404, 400, 409, 401', async () => {
    const id = randomUUID();
    const missing = await api.GET('/v1/executions/{id}', { params: { path: { id } } });
    expect(missing.response.status).toBe(404);
    expect(missing.error).toEqual({
      statusCode: 404,
      error: 'Not Found',
      message: `execution ${id} not found`,
    });

    const invalid = await api.POST('/v1/jobs', {
      body: { script: { type: 'bash', content: 'true' }, targets: {} },
    });
    expect(invalid.response.status).toBe(400);
    expect(invalid.error).toEqual({
      statusCode: 400,
      error: 'Bad Request',
      message: 'targets must name at least one server id or tag',
    });

    const taken = await api.POST('/v1/servers', {
      body: { name: serverName, host: sshd.host, username: sshd.username, password: 'x' },
    });
    expect(taken.response.status).toBe(409);
    expect(taken.error?.message).toBe(`a server named "${serverName}" already exists`);

    // The document's example of the 400 every /v1 route gives for a query it does not take
    const doc = await (await fetch(`${t.url}/docs/json`)).json();
    const unknownQuery = await fetch(`${t.url}/v1/executions/${id}/cancel?x=1`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${TEST_TOKEN}` },
    });
    expect(unknownQuery.status).toBe(400);
    expect(await unknownQuery.json()).toEqual(
      doc.paths['/v1/executions/{id}/cancel'].post.responses['400'].content['application/json']
        .example,
    );

    const anonymous = createCroniumClient(t.url, 'not-a-service-token');
    const refused = await anonymous.GET('/v1/servers');
    expect(refused.response.status).toBe(401);
    expect(refused.error).toEqual({
      statusCode: 401,
      error: 'Unauthorized',
      message: 'missing or invalid bearer token',
    });
  });

  it('asks for a token exactly on the operations whose security in the document says so', async () => {
    const doc = await (await fetch(`${t.url}/docs/json`)).json();
    const seen: string[] = [];
    for (const [path, item] of Object.entries<Record<string, any>>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(item)) {
        const url = path
          .replace('{id}', randomUUID())
          .replace('{userId}', 'default')
          .replace('{key}', 'k');
        const res = await fetch(`${t.url}${url}`, {
          method: method.toUpperCase(),
          ...(op.requestBody
            ? { headers: { 'content-type': 'application/json' }, body: '{}' }
            : {}),
        });
        await res.arrayBuffer();
        seen.push(`${method} ${path} ${op.security.length ? 'token' : 'public'}`);
        expect({ op: `${method} ${path}`, unauthorized: res.status === 401 }).toEqual({
          op: `${method} ${path}`,
          unauthorized: op.security.length > 0,
        });
      }
    }
    expect(seen).toContain('get /health/live public');
    expect(seen).toContain('post /v1/jobs token');
  });
});
