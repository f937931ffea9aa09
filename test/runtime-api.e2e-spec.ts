import * as fs from 'node:fs';
import * as os from 'node:os';
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
import { sh, SshdInstance, startSshd } from './support/sshd';

/** A python script (stdlib only) that calls the runtime API directly and prints JSON lines. */
const PY_HTTP = `
import json, os, urllib.request, urllib.error
EP = os.environ.get("CRONIUM_API_ENDPOINT")
TOKEN = os.environ.get("CRONIUM_API_TOKEN")
def call(method, path, body=None, token=TOKEN, ep=EP):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(ep + path, data=data, method=method)
    if token: req.add_header("Authorization", "Bearer " + token)
    if data is not None: req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
def emit(name, value): print(json.dumps({"k": name, "v": value}), flush=True)
`;

async function results(t: TestApp, id: string): Promise<Record<string, any>> {
  const out: Record<string, any> = {};
  for (const l of await logsOf(t, id)) {
    if (l.stream !== 'stdout') continue;
    try {
      const { k, v } = JSON.parse(l.text);
      out[k] = v;
    } catch {
      /* not ours */
    }
  }
  return out;
}

describe('runtime-helper API over the per-target tunnel (real sshd)', () => {
  let sshd: SshdInstance;
  let t: TestApp;
  let serverId: string;
  let tmp: string;

  beforeAll(async () => {
    sshd = await startSshd();
    t = await startApp();
    serverId = await registerServer(t, sshd, { baseDir: `${sshd.dir}/base` });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-rt-'));
  });
  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const submit = (body: Record<string, unknown>) =>
    t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .send({ targets: { serverIds: [serverId] }, ...body });

  const run = async (body: Record<string, unknown>) => {
    const res = await submit(body);
    expect(res.status).toBe(202);
    return waitForExecution(t, res.body.id);
  };

  it('serves context, input, variables, output and condition to the script in api mode', async () => {
    const input = { greeting: 'it\'s "hi"\n✓', n: [1, 2] };
    const ex = await run({
      helperMode: 'api',
      userId: 'alice',
      jobId: 'job-7',
      eventId: 'ev-9',
      input,
      script: {
        type: 'python',
        content:
          PY_HTTP +
          `
emit("mode", os.environ["CRONIUM_HELPER_MODE"])
emit("ctx", call("GET", "/runtime/v1/context"))
emit("input", call("GET", "/runtime/v1/input"))
emit("missing", call("GET", "/runtime/v1/variables/nope")[0])
emit("put", call("PUT", "/runtime/v1/variables/" + urllib.parse.quote("k e/y✓", safe=""), {"value": {"deep": ["x"]}}))
emit("get", call("GET", "/runtime/v1/variables/" + urllib.parse.quote("k e/y✓", safe="")))
emit("out", call("POST", "/runtime/v1/output", {"data": {"result": 42}}))
emit("cond", call("POST", "/runtime/v1/condition", {"condition": True}))
emit("badcond", call("POST", "/runtime/v1/condition", {"condition": "yes"})[0])
`.replace('import json, os,', 'import json, os, urllib.parse,'),
      },
    });
    expect(ex.status).toBe('succeeded');
    const target = ex.targets[0];
    expect(target.helperMode).toBe('api');
    expect(target.phases.tunnelMs).toEqual(expect.any(Number));
    expect(target.output).toEqual({ result: 42 });
    expect(target.condition).toBe(true);
    const r = await results(t, ex.id);
    expect(r.mode).toBe('api');
    expect(r.ctx).toEqual([
      200,
      expect.objectContaining({
        executionId: ex.id,
        jobId: 'job-7',
        eventId: 'ev-9',
        userId: 'alice',
        serverId,
      }),
    ]);
    expect(r.input).toEqual([200, { data: input }]);
    expect(r.missing).toBe(404);
    expect(r.put[0]).toBe(200);
    expect(r.get).toEqual([200, { key: 'k e/y✓', value: { deep: ['x'] } }]);
    expect(r.badcond).toBe(400);
    // persisted per user, and visible to callers
    const v = await t
      .http()
      .get(`/v1/variables/alice/${encodeURIComponent('k e/y✓')}`)
      .set(t.auth);
    expect(v.status).toBe(200);
    expect(v.body.value).toEqual({ deep: ['x'] });
    const other = await t
      .http()
      .get(`/v1/variables/default/${encodeURIComponent('k e/y✓')}`)
      .set(t.auth);
    expect(other.status).toBe(404);
    const logs = await logsOf(t, ex.id);
    expect(
      logs.some(
        (l) =>
          l.stream === 'system' && /helper mode api via http:\/\/127\.0\.0\.1:\d+/.test(l.text),
      ),
    ).toBe(true);
  });

  it('reaches nothing but the runtime API through the tunnel', async () => {
    const ex = await run({
      helperMode: 'api',
      script: {
        type: 'python',
        content:
          PY_HTTP +
          `
for p in ["/v1/jobs", "/v1/executions", "/metrics", "/health/ready", "/health/live", "/docs", "/runtime/v1/nope"]:
    emit(p, call("GET", p)[0])
emit("post-jobs", call("POST", "/v1/jobs", {"script": {"type": "bash", "content": "id"}})[0])
`,
      },
    });
    const r = await results(t, ex.id);
    for (const p of [
      '/v1/jobs',
      '/v1/executions',
      '/metrics',
      '/health/ready',
      '/health/live',
      '/docs',
      '/runtime/v1/nope',
      'post-jobs',
    ]) {
      expect([p, r[p]]).toEqual([p, 404]);
    }
  });

  it('refuses tampered, re-signed, alg:none, wrong-audience and expired tokens', async () => {
    const secret = fs.readFileSync(path.join(t.dataDir, 'jwt-secret'), 'utf8').trim();
    const ex = await run({
      helperMode: 'api',
      env: { JWT_SECRET_FOR_TEST: secret },
      script: {
        type: 'python',
        content:
          PY_HTTP +
          `
import base64, hashlib, hmac, time
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def unb64(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
h, p, s = TOKEN.split(".")
claims = json.loads(unb64(p))
key = os.environ["JWT_SECRET_FOR_TEST"].encode()
def sign(header, payload, alg=hashlib.sha256):
    hp = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    return hp + "." + b64(hmac.new(key, hp.encode(), alg).digest())
def status(tok): return call("GET", "/runtime/v1/context", token=tok)[0]
emit("own", status(TOKEN))
emit("resigned", status(sign({"alg": "HS256", "typ": "JWT"}, claims)))
emit("tampered", status(h + "." + b64(json.dumps(dict(claims, executionId="x")).encode()) + "." + s))
emit("none", status(b64(json.dumps({"alg": "none", "typ": "JWT"}).encode()) + "." + p + "."))
emit("hs384", status(sign({"alg": "HS384", "typ": "JWT"}, claims, hashlib.sha384)))
emit("audience", status(sign({"alg": "HS256", "typ": "JWT"}, dict(claims, aud="someone-else"))))
emit("issuer", status(sign({"alg": "HS256", "typ": "JWT"}, dict(claims, iss="evil"))))
emit("expired", status(sign({"alg": "HS256", "typ": "JWT"}, dict(claims, exp=int(time.time()) - 5))))
emit("other-target", status(sign({"alg": "HS256", "typ": "JWT"}, dict(claims, jti="00000000-0000-4000-8000-000000000000"))))
emit("no-token", status(None))
`,
      },
    });
    const r = await results(t, ex.id);
    expect(r.own).toBe(200);
    expect(r.resigned).toBe(200); // the forging above is right: only the changes below are refused
    for (const k of [
      'tampered',
      'none',
      'hs384',
      'audience',
      'issuer',
      'expired',
      'other-target',
      'no-token',
    ]) {
      expect([k, r[k]]).toEqual([k, 401]);
    }
  });

  it('gives concurrent executions their own ports and data; a token works only through its own tunnel and dies with its target', async () => {
    const tokenFile = path.join(tmp, 'token-a');
    const scriptA =
      PY_HTTP +
      `
emit("port", EP)
emit("input", call("GET", "/runtime/v1/input")[1])
open(${JSON.stringify(tokenFile)}, "w").write(TOKEN)
import time
while not os.path.exists(${JSON.stringify(tokenFile + '.go')}): time.sleep(0.05)
`;
    const a = await submit({
      helperMode: 'api',
      input: 'A',
      script: { type: 'python', content: scriptA },
    });
    await eventually(async () => fs.existsSync(tokenFile), 15000);
    const tokenA = fs.readFileSync(tokenFile, 'utf8');
    // A printed its endpoint before it wrote the token file; the log may lag a little
    let epA: string | undefined;
    await eventually(async () => !!(epA = (await results(t, a.body.id)).port), 10000);
    expect(epA).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const scriptB =
      PY_HTTP +
      `
emit("port", EP)
emit("input", call("GET", "/runtime/v1/input")[1])
emit("a-token-here", call("GET", "/runtime/v1/input", token=os.environ["TOKEN_A"]))
emit("a-token-on-a", call("GET", "/runtime/v1/input", token=os.environ["TOKEN_A"], ep=os.environ["EP_A"]))
`;
    const b = await run({
      helperMode: 'api',
      input: 'B',
      env: { TOKEN_A: tokenA, EP_A: epA },
      script: { type: 'python', content: scriptB },
    });
    // while A still runs, its token is refused through B's tunnel; through A's own (which
    // any process of the same SSH user could reach) it shows A's data only
    fs.writeFileSync(tokenFile + '.go', '');
    const exA = await waitForExecution(t, a.body.id);
    const ra = await results(t, exA.id);
    const rb = await results(t, b.id);
    expect(ra.input).toEqual({ data: 'A' });
    expect(rb.input).toEqual({ data: 'B' });
    expect(ra.port).not.toBe(rb.port);
    expect(rb['a-token-here']).toEqual([401, null]);
    expect(rb['a-token-on-a']).toEqual([200, { data: 'A' }]);

    // A has ended: its token is refused from now on, even through a live tunnel
    const c = await run({
      helperMode: 'api',
      env: { TOKEN_A: tokenA },
      script: {
        type: 'python',
        content:
          PY_HTTP +
          'emit("dead", call("GET", "/runtime/v1/context", token=os.environ["TOKEN_A"])[0])',
      },
    });
    expect((await results(t, c.id)).dead).toBe(401);
  });

  it('python and node helpers speak through a Unix socket no other local user can reach; bash through the port', async () => {
    const hold = path.join(tmp, 'sock-hold');
    const py = await submit({
      helperMode: 'api',
      input: { via: 'socket' },
      script: {
        type: 'python',
        content: `
import json, os, stat, time
s = os.environ["CRONIUM_API_SOCKET"]
print(json.dumps({"k": "sock", "v": s}), flush=True)
print(json.dumps({"k": "input", "v": cronium.input()}), flush=True)
cronium.output({"py": True})
open(${JSON.stringify(hold)}, "w").write(s)
while not os.path.exists(${JSON.stringify(hold + '.go')}): time.sleep(0.05)
`,
      },
    });
    expect(py.status).toBe(202);
    await eventually(async () => fs.existsSync(hold), 15000);
    const sock = fs.readFileSync(hold, 'utf8');
    expect(sock).toBe(path.join(sshd.dir, 'base', 'runs', `${sock.split('/').pop()}`));
    const st = fs.statSync(sock);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o077).toBe(0);
    expect(fs.statSync(path.dirname(sock)).mode & 0o077).toBe(0);
    // another local user cannot even connect to it
    const probe = `import socket; s=socket.socket(socket.AF_UNIX); s.connect(${JSON.stringify(sock)})`;
    const other = await sh(`runuser -u nobody -- python3 -c '${probe}' 2>&1; echo "rc=$?"`);
    expect(other.stdout).toMatch(/Permission denied/);
    expect(other.stdout).toMatch(/rc=1/);
    fs.writeFileSync(hold + '.go', '');
    const ex = await waitForExecution(t, py.body.id);
    expect(ex.targets[0]).toMatchObject({ status: 'succeeded', output: { py: true } });
    expect((await results(t, ex.id)).input).toEqual({ via: 'socket' });
    await eventually(async () => !fs.existsSync(sock), 10000);

    const node = await run({
      helperMode: 'api',
      input: 'n',
      script: {
        type: 'node',
        content:
          'console.log(JSON.stringify({k: "sock", v: process.env.CRONIUM_API_SOCKET || null}));' +
          'cronium.input().then((v) => cronium.output({ node: v }));',
      },
    });
    expect(node.targets[0]).toMatchObject({ status: 'succeeded', output: { node: 'n' } });
    expect((await results(t, node.id)).sock).toMatch(/\/runs\/[0-9a-f-]+\.sock$/);

    const bash = await run({
      helperMode: 'api',
      input: 'b',
      script: {
        type: 'bash',
        content:
          'echo "{\\"k\\":\\"sock\\",\\"v\\":\\"${CRONIUM_API_SOCKET-none}\\"}"; cronium.output "$(cronium.input)"',
      },
    });
    expect(bash.targets[0]).toMatchObject({ status: 'succeeded', output: 'b' });
    expect((await results(t, bash.id)).sock).toBe('none');
  });

  it('never shows the token in the remote process list, logs or API responses', async () => {
    const tokenFile = path.join(tmp, 'token-ps');
    const res = await submit({
      helperMode: 'api',
      script: {
        type: 'bash',
        content: `printf %s "$CRONIUM_API_TOKEN" > ${tokenFile}; sleep 7321`,
      },
    });
    await eventually(async () => (await alive('sleep 7321')).length === 1, 15000);
    const token = fs.readFileSync(tokenFile, 'utf8');
    expect(token.split('.')).toHaveLength(3);
    const ps = await sh('ps -eo args');
    expect(ps.stdout).not.toContain(token);
    await t.http().post(`/v1/executions/${res.body.id}/cancel`).set(t.auth);
    const ex = await waitForExecution(t, res.body.id);
    expect(JSON.stringify(ex)).not.toContain(token);
    const logs = await t.http().get(`/v1/executions/${res.body.id}/logs`).set(t.auth);
    expect(JSON.stringify(logs.body)).not.toContain(token);
    const list = await t.http().get('/v1/executions').set(t.auth);
    expect(JSON.stringify(list.body)).not.toContain(token);
  });

  it('runs bundled mode from files and applies the results like api mode', async () => {
    await t
      .http()
      .put('/v1/variables/bob/seed')
      .set(t.auth)
      .send({ value: { s: 1 } })
      .expect(200);
    const ex = await run({
      helperMode: 'bundled',
      userId: 'bob',
      input: { x: 'y' },
      script: {
        type: 'python',
        content: `
import json, os
w = os.environ["CRONIUM_WORK_DIR"]
print(json.dumps({"mode": os.environ["CRONIUM_HELPER_MODE"], "token": "CRONIUM_API_TOKEN" in os.environ,
  "input": json.load(open(w + "/input.json")), "vars": json.load(open(w + "/variables.json")),
  "ctx": json.load(open(w + "/context.json"))["userId"]}))
os.makedirs(w + "/out", exist_ok=True)
def put(name, data): open(w + "/out/" + name, "w").write(data)
put("output.val", json.dumps([1, "two"])); put("output.type", "json")
put("condition", "false")
put("var.1.key", "made here"); put("var.1.val", "plain text"); put("var.1.type", "auto")
put("var.2.key", "seed"); put("var.2.val", "{\\"s\\": 2}"); put("var.2.type", "json")
`,
      },
    });
    expect(ex.status).toBe('succeeded');
    expect(ex.targets[0]).toMatchObject({
      helperMode: 'bundled',
      output: [1, 'two'],
      condition: false,
    });
    const line = (await logsOf(t, ex.id)).find((l) => l.stream === 'stdout');
    expect(JSON.parse(line.text)).toEqual({
      mode: 'bundled',
      token: false,
      input: { x: 'y' },
      vars: { seed: { s: 1 } },
      ctx: 'bob',
    });
    expect(
      (
        await t
          .http()
          .get(`/v1/variables/bob/${encodeURIComponent('made here')}`)
          .set(t.auth)
      ).body.value,
    ).toBe('plain text');
    expect((await t.http().get('/v1/variables/bob/seed').set(t.auth)).body.value).toEqual({ s: 2 });
    // collected and removed
    expect(await eventually(async () => runDirsIn(`${sshd.dir}/base`).length === 0, 3000)).toBe(
      true,
    );
  });

  it('manages variables over REST with 404s and clear 400s', async () => {
    expect((await t.http().get('/v1/variables/carol/k').set(t.auth)).status).toBe(404);
    expect(
      (await t.http().put('/v1/variables/carol/k').set(t.auth).send({ value: null })).status,
    ).toBe(200);
    expect((await t.http().get('/v1/variables/carol/k').set(t.auth)).body).toEqual({
      userId: 'carol',
      key: 'k',
      value: null,
    });
    expect((await t.http().put('/v1/variables/carol/k').set(t.auth).send({})).status).toBe(400);
    expect(
      (await t.http().put('/v1/variables/bad%20user/k').set(t.auth).send({ value: 1 })).status,
    ).toBe(400);
    expect((await t.http().delete('/v1/variables/carol/k').set(t.auth)).status).toBe(204);
    expect((await t.http().delete('/v1/variables/carol/k').set(t.auth)).status).toBe(404);
    expect((await t.http().get('/v1/variables/carol/k')).status).toBe(401);
  });

  it('bash reads a string input and a variable that hold U+0000: the NULs dropped, nothing else changed', async () => {
    // bash cannot hold NUL and its `read -N` does not count the NULs it drops: a raw body
    // holding one failed with "bad HTTP response" (found by the property suite in CI)
    const put = await t
      .http()
      .put('/v1/variables/nul-user/k')
      .set(t.auth)
      .send({ value: 'v\u0000w✓' });
    expect(put.status).toBe(200);
    const ex = await run({
      helperMode: 'api',
      userId: 'nul-user',
      input: '\u0000a\u0000b ✓\u0000',
      script: {
        type: 'bash',
        content:
          'printf "in=%s\\n" "$(cronium.input)"; printf "var=%s\\n" "$(cronium.getVariable k)"',
      },
    });
    const logs = await logsOf(t, ex.id);
    expect({
      status: ex.status,
      stdout: logs.filter((l) => l.stream === 'stdout').map((l) => l.text),
      stderr: logs.filter((l) => l.stream === 'stderr').map((l) => l.text),
    }).toEqual({ status: 'succeeded', stdout: ['in=ab ✓', 'var=vw✓'], stderr: [] });
  });
});

describe('helper mode against a server that forbids TCP forwarding (real sshd)', () => {
  let sshd: SshdInstance;
  let t: TestApp;
  let serverId: string;
  beforeAll(async () => {
    sshd = await startSshd({ allowTcpForwarding: false });
    t = await startApp();
    serverId = await registerServer(t, sshd, { baseDir: `${sshd.dir}/base` });
  });
  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
  });

  const run = async (helperMode: string) => {
    const res = await t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .send({
        helperMode,
        script: { type: 'bash', content: 'echo "$CRONIUM_HELPER_MODE"' },
        targets: { serverIds: [serverId] },
      });
    return waitForExecution(t, res.body.id);
  };

  it('auto falls back to bundled and records why', async () => {
    const ex = await run('auto');
    expect(ex.status).toBe('succeeded');
    expect(ex.targets[0].helperMode).toBe('bundled');
    expect(ex.targets[0].fallbackReason).toMatch(/forward/i);
    expect(
      (await logsOf(t, ex.id)).some((l) => l.stream === 'stdout' && l.text === 'bundled'),
    ).toBe(true);
    // the refusal is remembered on the connection: the next job does not ask again
    const next = await run('auto');
    expect(next.targets[0]).toMatchObject({ status: 'succeeded', helperMode: 'bundled' });
    expect(next.targets[0].fallbackReason).toMatch(/forward.*refused earlier on this connection/i);
  });

  it('api fails the target with tunnel_failed', async () => {
    const ex = await run('api');
    expect(ex.targets[0].status).toBe('failed');
    expect(ex.targets[0].error.code).toBe('tunnel_failed');
  });
});
