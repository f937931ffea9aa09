import * as fs from 'node:fs';
import { registerServer, startApp, TestApp } from './support/app';
import { SshdInstance, startSshd } from './support/sshd';

/** Every caller mistake is a clear 4xx JSON error and changes nothing. */
describe('bad input', () => {
  let sshd: SshdInstance;
  let t: TestApp;
  let serverId: string;
  const marker = `/tmp/cronium-injected-${process.pid}`;

  beforeAll(async () => {
    sshd = await startSshd();
    t = await startApp({ CRONIUM__LIMITS__MAX_SCRIPT_BYTES: '4096' });
    serverId = await registerServer(t, sshd, { baseDir: `${sshd.dir}/base` });
  });
  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
    fs.rmSync(marker, { force: true });
  });

  const count = async () => {
    const res = await t.http().get('/v1/executions?limit=200').set(t.auth);
    return res.body.items.length;
  };
  const job = (over: Record<string, unknown>) => ({
    script: { type: 'bash', content: 'echo ok' },
    targets: { serverIds: [serverId] },
    ...over,
  });

  const badJobs: [string, unknown, RegExp][] = [
    ['no body fields', {}, /script/],
    ['unknown field', job({ surprise: 1 }), /surprise/],
    ['bad script type', job({ script: { type: 'ruby', content: 'puts 1' } }), /script\.type/],
    ['script not an object', job({ script: 'echo' }), /script/],
    ['no targets', job({ targets: {} }), /targets/],
    [
      'unknown server id',
      job({ targets: { serverIds: ['6f1f7c3e-8d1a-4c5e-9f0a-1b2c3d4e5f60'] } }),
      /6f1f7c3e/,
    ],
    ['server id not a uuid', job({ targets: { serverIds: ['$(reboot)'] } }), /serverIds/],
    ['tag matching nothing', job({ targets: { tags: ['no-such-tag'] } }), /no-such-tag/],
    ['bad env name', job({ env: { 'BAD-NAME': 'x' } }), /BAD-NAME/],
    ['env name with shell syntax', job({ env: { 'X;touch /tmp/x': 'x' } }), /env/],
    ['env value not a string', job({ env: { OK: 1 } }), /OK must be a string/],
    ['reserved env name', job({ env: { CRONIUM_API_TOKEN: 'x' } }), /reserved/],
    ['timeout zero', job({ timeoutSeconds: 0 }), /timeoutSeconds/],
    ['timeout not a number', job({ timeoutSeconds: '10; reboot' }), /timeoutSeconds/],
    ['bad helper mode', job({ helperMode: 'magic' }), /helperMode/],
    ['bad maxErrors', job({ maxErrors: '150%' }), /maxErrors/],
    ['negative concurrency', job({ concurrency: -1 }), /concurrency/],
    ['bad userId', job({ userId: 'a b' }), /userId/],
  ];

  it.each(badJobs)(
    'POST /v1/jobs refuses %s with a 400 naming the problem',
    async (_name, body, msg) => {
      const before = await count();
      const res = await t
        .http()
        .post('/v1/jobs')
        .set(t.auth)
        .send(body as object);
      expect([400, 404]).toContain(res.status);
      expect(res.body).toEqual({
        statusCode: res.status,
        error: expect.any(String),
        message: expect.stringMatching(msg),
      });
      expect(await count()).toBe(before);
    },
  );

  it('refuses an oversize script with 413 and creates nothing', async () => {
    const before = await count();
    const res = await t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .send(job({ script: { type: 'bash', content: 'x'.repeat(5000) } }));
    expect(res.status).toBe(413);
    expect(res.body.message).toMatch(/script\.content/);
    expect(await count()).toBe(before);
  });

  it('refuses malformed JSON with 400', async () => {
    const res = await t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .set('Content-Type', 'application/json')
      .send('{"script":');
    expect(res.status).toBe(400);
    expect(res.body.message).toMatch(/JSON/);
  });

  it('refuses JSON nested deeper than limits.maxJsonDepth with 400 on every route, creating nothing', async () => {
    const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
    const before = await count();
    for (const [method, url, body] of [
      [
        'post',
        '/v1/jobs',
        `{"script":{"type":"bash","content":"true"},"targets":{"serverIds":[]},"input":${deep(1500)}}`,
      ],
      ['post', '/v1/servers', `{"name":"deep","host":"h","username":"u","tags":${deep(3000)}}`],
      ['put', '/v1/variables/u1/k1', `{"value":${deep(20000)}}`],
      ['patch', `/v1/servers/00000000-0000-4000-8000-000000000000`, `{"tags":${deep(100)}}`],
    ] as const) {
      const res = await t
        .http()
        [method](url)
        .set(t.auth)
        .set('Content-Type', 'application/json')
        .send(body);
      expect([url, res.status, res.body.message]).toEqual([
        url,
        400,
        'the request body is nested deeper than 64 levels',
      ]);
    }
    expect(await count()).toBe(before);
    expect((await t.http().get('/v1/variables/u1/k1').set(t.auth)).status).toBe(404);
    // 64 levels are still fine
    const ok = await t
      .http()
      .put('/v1/variables/u1/k1')
      .set(t.auth)
      .send({ value: JSON.parse(deep(63)) });
    expect(ok.status).toBe(200);
  });

  it('needs a service token on every /v1 route, not on probes', async () => {
    expect((await t.http().get('/v1/executions')).status).toBe(401);
    expect(
      (await t.http().get('/v1/servers').set('Authorization', 'Bearer wrong-token-123456')).status,
    ).toBe(401);
    expect((await t.http().post('/v1/jobs').send(job({}))).status).toBe(401);
    expect((await t.http().get('/health/live')).status).toBe(200);
    expect((await t.http().get('/health/ready')).status).toBe(200);
    const metrics = await t.http().get('/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.text).toMatch(/cronium_executions_total/);
  });

  it('answers unknown or malformed execution ids with 404, bad queries with 400', async () => {
    expect((await t.http().get('/v1/executions/not-a-uuid').set(t.auth)).status).toBe(404);
    expect(
      (await t.http().get('/v1/executions/6f1f7c3e-8d1a-4c5e-9f0a-1b2c3d4e5f60').set(t.auth))
        .status,
    ).toBe(404);
    expect(
      (
        await t
          .http()
          .post('/v1/executions/6f1f7c3e-8d1a-4c5e-9f0a-1b2c3d4e5f60/cancel')
          .set(t.auth)
      ).status,
    ).toBe(404);
    expect((await t.http().get('/v1/executions?limit=0').set(t.auth)).status).toBe(400);
    expect((await t.http().get('/v1/executions?status=weird').set(t.auth)).status).toBe(400);
    expect((await t.http().get('/v1/executions?cursor=%27%3B--').set(t.auth)).status).toBe(400);
    // integers in range only, written as plain decimals
    const logs = '/v1/executions/6f1f7c3e-8d1a-4c5e-9f0a-1b2c3d4e5f60/logs';
    for (const q of [
      'afterSeq=1e23',
      'afterSeq=0x10',
      'afterSeq=',
      'afterSeq=-1',
      'afterSeq=1.5',
      'afterSeq=+3',
      'limit=1e3',
      'afterSeq=9999999999999999',
    ]) {
      const res = await t.http().get(`${logs}?${q}`).set(t.auth);
      expect([q, res.status]).toEqual([q, 400]);
    }
    expect((await t.http().get(`${logs}?afterSeq=16&limit=10`).set(t.auth)).status).toBe(404);
    expect((await t.http().get('/v1/executions?limit=abc').set(t.auth)).status).toBe(400);
  });

  it('refuses lone surrogates and bytes that are not UTF-8 with 400, creating nothing', async () => {
    const before = await count();
    const lone = await t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .set('Content-Type', 'application/json')
      .send(
        '{"name":"x\\ud800","script":{"type":"bash","content":"true"},"targets":{"serverIds":[]}}',
      );
    expect([lone.status, lone.body.message]).toEqual([
      400,
      'name: holds a lone UTF-16 surrogate (not a character)',
    ]);
    const key = await t
      .http()
      .put('/v1/variables/u1/k3')
      .set(t.auth)
      .set('Content-Type', 'application/json')
      .send('{"value":{"\\udc00":1}}');
    expect([key.status, key.body.message]).toEqual([
      400,
      'value.\udc00: holds a lone UTF-16 surrogate (not a character)',
    ]);
    const raw = Buffer.concat([
      Buffer.from('{"name":"'),
      Buffer.from([0xc3, 0x28]), // not UTF-8
      Buffer.from('","host":"h","username":"u","password":"p"}'),
    ]);
    const res = await fetch(`${t.url}/v1/servers`, {
      method: 'POST',
      headers: { Authorization: t.auth.Authorization, 'Content-Type': 'application/json' },
      body: raw,
    });
    const bytes = { status: res.status, body: await res.json() };
    expect([bytes.status, bytes.body.message]).toEqual([400, 'request body is not valid UTF-8']);
    expect(await count()).toBe(before);
    // a real astral character (a surrogate pair) is fine
    const pair = await t.http().put('/v1/variables/u1/k3').set(t.auth).send({ value: '😀' });
    expect(pair.status).toBe(200);
  });

  it('refuses a JSON array where an object is expected, changing nothing', async () => {
    const id = await registerServer(t, sshd, { name: 'not-an-array' });
    for (const [method, url] of [
      ['patch', `/v1/servers/${id}`],
      ['post', '/v1/servers'],
      ['post', '/v1/jobs'],
      ['put', '/v1/variables/u1/k2'],
    ] as const) {
      const res = await t.http()[method](url).set(t.auth).send([]);
      expect([url, res.status, res.body.message]).toEqual([
        url,
        400,
        'the request body must be a JSON object',
      ]);
    }
    expect((await t.http().get(`/v1/servers/${id}`).set(t.auth)).body.name).toBe('not-an-array');
  });

  it('refuses server fields that could reach a command line', async () => {
    const base = { name: 'x1', host: '127.0.0.1', username: 'root', password: 'pw' };
    for (const bad of [
      { baseDir: `~/x; touch ${marker}` },
      { baseDir: '../etc' },
      { baseDir: '$(touch /tmp/x)' },
      { host: '-oProxyCommand=touch' },
      { username: 'root;id' },
      { port: 70000 },
      { hostKey: 'not a key' },
      { tags: ['ok', 'bad tag'] },
    ]) {
      const res = await t
        .http()
        .post('/v1/servers')
        .set(t.auth)
        .send({ ...base, ...bad });
      expect(res.status).toBe(400);
      expect(res.body.statusCode).toBe(400);
    }
    const list = await t.http().get('/v1/servers').set(t.auth);
    expect(list.body.map((s: any) => s.name)).not.toContain('x1');
    expect(fs.existsSync(marker)).toBe(false);
  });

  it('runs nothing from shell metacharacters in names, job ids and input', async () => {
    const evil = `$(touch ${marker}); \`touch ${marker}\` | touch ${marker} && touch ${marker}`;
    const res = await t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .send(
        job({
          name: evil,
          jobId: evil,
          eventId: evil,
          input: { evil },
          script: { type: 'bash', content: 'echo safe' },
        }),
      );
    expect(res.status).toBe(202);
    for (let i = 0; i < 200; i++) {
      const ex = await t.http().get(`/v1/executions/${res.body.id}`).set(t.auth);
      if (ex.body.status === 'succeeded' || ex.body.status === 'failed') {
        expect(ex.body.status).toBe('succeeded');
        expect(ex.body.name).toBe(evil);
        break;
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(fs.existsSync(marker)).toBe(false);
  });
});
