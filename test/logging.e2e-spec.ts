import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { privateRedis, PrivateRedis } from './support/cluster';
import { SERVICE_MAIN, ServiceProcess, startServiceProcess } from './support/service-process';
import { freePort, SshdInstance, startSshd } from './support/sshd';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The service as a process whose stdout (its log) the test reads, line by line. */
async function loggedService(env: Record<string, string> = {}) {
  const svc = await startServiceProcess({
    env: { NODE_ENV: 'test', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  let rest = '';
  svc.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop()!;
    lines.push(...parts);
  });
  /** Every line so far, parsed (a line that is not JSON fails the test). */
  const records = () => lines.map((l) => JSON.parse(l));
  /** Waits (5 s at most) until some record matches, and returns the matching ones. */
  const until = async (pred: (r: any) => boolean, what: string) => {
    for (const end = Date.now() + 5000; ; await sleep(25)) {
      const found = records().filter(pred);
      if (found.length) return found;
      if (Date.now() > end) throw new Error(`no log line ${what} in:\n${lines.join('\n')}`);
    }
  };
  return { svc, lines, records, until };
}

/** Every line of the service's output once it has exited (stdout and stderr). */
function runToExit(env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-logging-'));
  const child = spawn(process.execPath, [SERVICE_MAIN], {
    env: { ...process.env, NODE_ENV: 'test', CRONIUM_DATA_DIR: dataDir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      clearTimeout(killer);
      fs.rmSync(dataDir, { recursive: true, force: true });
      resolve({ code, out });
    }),
  );
}

describe('logs: request ids, fields and levels (real process, real sshd)', () => {
  let sshd: SshdInstance;
  let s: Awaited<ReturnType<typeof loggedService>>;
  let svc: ServiceProcess;
  beforeAll(async () => {
    sshd = await startSshd();
    s = await loggedService();
    svc = s.svc;
    await svc.waitReady();
  });
  afterAll(async () => {
    await svc?.stop();
    await sshd?.stop();
  });

  it('writes one JSON object a line when stdout is not a terminal', async () => {
    const [listening] = await s.until((r) => /^listening on /.test(r.msg), 'listening on');
    expect(listening).toMatchObject({ level: 30, context: 'Main', replicaId: expect.any(String) });
    expect(s.lines.length).toBeGreaterThan(0);
    for (const l of s.lines) expect(() => JSON.parse(l)).not.toThrow();
  });

  it("echoes a sane X-Request-Id, replaces an unsafe one, generates one, and logs it on the request's line", async () => {
    const get = (id?: string) =>
      fetch(`${svc.base}/v1/servers`, {
        headers: { ...svc.headers, ...(id === undefined ? {} : { 'X-Request-Id': id }) },
      });
    const given = await get('trace-42.a:b_c');
    expect(given.status).toBe(200);
    expect(given.headers.get('x-request-id')).toBe('trace-42.a:b_c');
    for (const bad of ['x'.repeat(129), 'has space', 'quote"s', '']) {
      const res = await get(bad);
      expect(res.headers.get('x-request-id')).toMatch(UUID_RE);
    }
    const none = await get();
    const generated = none.headers.get('x-request-id')!;
    expect(generated).toMatch(UUID_RE);
    const [line] = await s.until((r) => r.requestId === 'trace-42.a:b_c', 'with the given id');
    expect(line).toMatchObject({ level: 30, req: { method: 'GET', url: '/v1/servers' } });
    expect(line.res.statusCode).toBe(200);
    await s.until((r) => r.requestId === generated, 'with the generated id');
    // a 404 off every route gets one too
    const off = await fetch(`${svc.base}/v1/nope`, { headers: { 'X-Request-Id': 'r-404' } });
    expect(off.status).toBe(404);
    expect(off.headers.get('x-request-id')).toBe('r-404');
  });

  it("logs a caller's 4xx at info, not as a warning or an error", async () => {
    const unauth = await fetch(`${svc.base}/v1/servers`, { headers: { 'X-Request-Id': 'r-401' } });
    expect(unauth.status).toBe(401);
    const bad = await fetch(`${svc.base}/v1/jobs`, {
      method: 'POST',
      headers: { ...svc.headers, 'X-Request-Id': 'r-400' },
      body: '{"script":',
    });
    expect(bad.status).toBe(400);
    const lines = await s.until((r) => r.requestId === 'r-400', 'for the 400');
    lines.push(...(await s.until((r) => r.requestId === 'r-401', 'for the 401')));
    for (const l of lines) expect(l.level).toBe(30);
    expect(lines.map((l) => l.res?.statusCode).sort()).toEqual([400, 401]);
    // a token in the query is no more logged than one in the header
    const q = await fetch(`${svc.base}/v1/servers?token=svc-secret-in-url`, {
      headers: { 'X-Request-Id': 'r-token' },
    });
    expect(q.status).toBe(401);
    const [tokenLine] = await s.until((r) => r.requestId === 'r-token', 'for ?token=');
    expect(tokenLine.req.url).toBe('/v1/servers?token=[redacted]');
    expect(s.lines.join('\n')).not.toContain('svc-secret-in-url');
    expect(s.lines.join('\n')).not.toContain(svc.token);
  });

  it('execution lines carry executionId, serverId and replicaId, not the POST request; a failed target is a warning', async () => {
    const srv = await svc.registerServer(sshd, { baseDir: `${sshd.dir}/base` });
    const serverId = srv.body.id as string;
    const submit = async (content: string, requestId: string) => {
      const res = await fetch(`${svc.base}/v1/jobs`, {
        method: 'POST',
        headers: { ...svc.headers, 'X-Request-Id': requestId },
        body: JSON.stringify({
          script: { type: 'bash', content },
          targets: { serverIds: [serverId] },
        }),
      });
      expect(res.status).toBe(202);
      const id = ((await res.json()) as { id: string }).id;
      await svc.waitForExecution(id, { timeoutMs: 90_000 }).catch(async (e) => {
        const ex = await svc.api('GET', `/v1/executions/${id}`);
        throw new Error(`${e.message}: ${JSON.stringify(ex.body)}`);
      });
      return id;
    };
    const ok = await submit('echo fine', 'submit-ok');
    const bad = await submit('echo no >&2; exit 3', 'submit-bad');
    const finished = (id: string) =>
      s.until((r) => r.executionId === id && r.msg === 'execution finished', `end of ${id}`);
    await finished(ok);
    await finished(bad);
    const replicaId = s.records().find((r) => r.context === 'Main').replicaId;
    const ofExecution = s.records().filter((r) => r.executionId === ok || r.executionId === bad);
    expect(ofExecution.length).toBeGreaterThanOrEqual(6); // started, target finished, finished × 2
    for (const l of ofExecution) {
      expect(l.req).toBeUndefined();
      expect(l.requestId).toBeUndefined();
      expect(l.replicaId).toBe(replicaId);
    }
    const target = (id: string) =>
      ofExecution.find((r) => r.executionId === id && r.msg === 'target finished');
    expect(target(ok)).toMatchObject({ level: 30, serverId, status: 'succeeded', exitCode: 0 });
    expect(target(bad)).toMatchObject({ level: 40, serverId, status: 'failed', exitCode: 3 });
    // the POST itself is one line with its request id, the whole req and its 202
    const posts = s.records().filter((r) => r.requestId === 'submit-ok');
    expect(posts).toHaveLength(1);
    expect(posts[0]).toMatchObject({ req: { method: 'POST' }, res: { statusCode: 202 } });
  });

  it('listens on every address by default (127.0.0.2 answers too)', async () => {
    expect((await fetch(`http://127.0.0.2:${svc.port}/health/live`)).status).toBe(200);
  });
});

describe('HOST and LOG_FORMAT (real process)', () => {
  it('HOST=127.0.0.1 listens there and nowhere else', async () => {
    const svc = await startServiceProcess({ env: { NODE_ENV: 'test', HOST: '127.0.0.1' } });
    try {
      await svc.waitReady();
      expect((await fetch(`http://127.0.0.1:${svc.port}/health/live`)).status).toBe(200);
      await expect(fetch(`http://127.0.0.2:${svc.port}/health/live`)).rejects.toThrow();
    } finally {
      await svc.stop();
    }
  });

  it('an invalid HOST, LOG_FORMAT or an address not of this machine stops the boot with one line, exit 78', async () => {
    const port = String(await freePort());
    const cases: [Record<string, string>, RegExp][] = [
      [{ HOST: 'not a host!' }, /^cronium-orchestrator: invalid configuration: host: .*\(HOST\)$/],
      [{ HOST: '999.1.1.1' }, /^cronium-orchestrator: invalid configuration: host: .*\(HOST\)$/],
      [
        { HOST: '192.0.2.1' }, // TEST-NET-1: never an address of this machine
        /^cronium-orchestrator: cannot listen on 192\.0\.2\.1:\d+: the address is not one of this machine \(HOST\) \(EADDRNOTAVAIL\)$/,
      ],
      [
        { LOG_FORMAT: 'xml' },
        /^cronium-orchestrator: invalid configuration: logFormat: must be json or pretty \(LOG_FORMAT\)$/,
      ],
    ];
    for (const [env, message] of cases) {
      const { code, out } = await runToExit({ PORT: port, ...env });
      expect({ env, code }).toEqual({ env, code: 78 });
      expect(out.trim().split('\n')).toEqual([expect.stringMatching(message)]);
    }
  });

  it('LOG_FORMAT=pretty writes readable lines, not JSON', async () => {
    const s = await loggedService({ LOG_FORMAT: 'pretty' });
    try {
      await s.svc.waitReady();
      for (let i = 0; !s.lines.some((l) => l.includes('listening on')); i++) {
        if (i > 200) throw new Error(`no listening line in:\n${s.lines.join('\n')}`);
        await sleep(25);
      }
      const line = s.lines.find((l) => l.includes('listening on'))!;
      expect(line).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(\d+\): .*listening on/);
      expect(() => JSON.parse(line)).toThrow();
    } finally {
      await s.svc.stop();
    }
  });
});

describe('readiness: terminus body on 503, one warning per change (real process, real Redis)', () => {
  let redis: PrivateRedis;
  beforeAll(async () => {
    redis = await privateRedis();
  });
  afterAll(async () => redis?.stop());

  it('keeps {status, info, error, details} on 503 and logs the change once, not every probe', async () => {
    const s = await loggedService({ REDIS_URL: redis.url });
    try {
      await s.svc.waitReady();
      await redis.kill();
      const probes: { status: number; body: any }[] = [];
      for (let i = 0; i < 30 && probes.filter((p) => p.status === 503).length < 5; i++) {
        const res = await fetch(`${s.svc.base}/health/ready`);
        probes.push({ status: res.status, body: await res.json() });
        await sleep(100);
      }
      const down = probes.filter((p) => p.status === 503);
      expect(down.length).toBe(5);
      for (const p of down) {
        expect(Object.keys(p.body).sort()).toEqual(['details', 'error', 'info', 'status']);
        expect(p.body.status).toBe('error');
        expect(p.body.error.redis).toMatchObject({ status: 'down' });
        expect(p.body.info.database).toEqual({ status: 'up' });
        expect(p.body.details.redis.status).toBe('down');
      }
      const failing = await s.until((r) => r.msg === 'readiness probe failing', 'failing');
      expect(failing).toHaveLength(1);
      expect(failing[0]).toMatchObject({ level: 40, context: 'Health', down: ['redis'] });

      await redis.start();
      await s.svc.waitReady(20_000);
      const again = await s.until((r) => r.msg === 'readiness probe passing again', 'again');
      expect(again).toHaveLength(1);
      expect(again[0]).toMatchObject({ level: 30, was: ['redis'] });
      for (let i = 0; i < 3; i++)
        expect((await fetch(`${s.svc.base}/health/ready`)).status).toBe(200);
      expect(s.records().filter((r) => /^readiness/.test(r.msg))).toHaveLength(2);
      expect(s.records().filter((r) => r.level >= 50)).toEqual([]);
    } finally {
      await s.svc.stop();
    }
  });
});
