/**
 * The runtime helpers' HTTP clients (remote/helpers/, contract docs/runtime-helpers.md,
 * API mode), run for real (bash, python3, node) against a stand-in of the runtime API:
 * a tiny node:http server implementing just the documented routes over an in-memory
 * map.  The real service is exercised end to end elsewhere; this checks the client code
 * paths: percent-encoded keys, raw GETs and text/plain bodies for bash, JSON bodies for
 * python and node, the Authorization header, 404 and error handling, HTTP framing.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ScriptType as Lang } from '../executions/request';

const SRC_HELPERS = path.resolve(__dirname, 'remote', 'helpers');
const TOKEN = 'tok-123.abc';

jest.setTimeout(60000);

// ---------------------------------------------------------------- the stand-in API

interface Seen {
  method: string;
  url: string;
  auth: string | undefined;
  type: string | undefined;
  body: string;
}

const CONTEXT = {
  executionId: 'exec-1',
  jobId: 'job-1',
  eventId: 'evt-1',
  userId: 'user-1',
  serverId: 'srv-1',
  serverName: 'web 1',
  helperMode: 'api',
};

/** `text/plain` bodies: JSON when the text parses, else the string. */
function auto(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
/** `?format=raw`: a string raw, anything else as JSON. */
const raw = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

class FakeApi {
  vars = new Map<string, unknown>();
  input: unknown = null;
  output: unknown = undefined;
  condition: unknown = undefined;
  seen: Seen[] = [];
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => this.handle(req, Buffer.concat(chunks).toString('utf8'), res));
  });

  async listen(port = 0): Promise<number> {
    await new Promise<void>((r) => this.server.listen(port, '127.0.0.1', r));
    return (this.server.address() as net.AddressInfo).port;
  }

  private send(res: http.ServerResponse, status: number, body: unknown, text = false) {
    const buf = Buffer.from(text ? String(body) : JSON.stringify(body));
    res.writeHead(status, {
      'Content-Type': text ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8',
      'Content-Length': buf.length,
    });
    res.end(buf);
  }

  private error(res: http.ServerResponse, status: number, error: string, message: string) {
    this.send(res, status, { statusCode: status, error, message });
  }

  private handle(req: http.IncomingMessage, body: string, res: http.ServerResponse) {
    const type = req.headers['content-type'];
    this.seen.push({
      method: req.method!,
      url: req.url!,
      auth: req.headers.authorization,
      type,
      body,
    });
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      return this.error(res, 401, 'Unauthorized', 'bad token');
    }
    const url = new URL(req.url!, 'http://x');
    const p = url.pathname.replace(/^\/prefix(?=\/)/, '');
    const isRaw = url.searchParams.get('format') === 'raw';
    let json: any;
    if (req.method === 'POST' || req.method === 'PUT') {
      if (type === 'text/plain; charset=utf-8') {
        json = { text: body };
      } else if (type === 'application/json') {
        try {
          json = JSON.parse(body);
        } catch {
          return this.error(res, 400, 'Bad Request', 'body is not JSON');
        }
      } else {
        return this.error(res, 415, 'Unsupported Media Type', `content-type ${type}`);
      }
    }
    const m = /^\/runtime\/v1\/variables\/([^/]+)$/.exec(p);
    if (m) {
      const key = decodeURIComponent(m[1]);
      if (req.method === 'PUT') {
        if (!('text' in json) && !('value' in json))
          return this.error(res, 400, 'Bad Request', 'value?');
        this.vars.set(key, 'text' in json ? auto(json.text) : json.value);
        return this.send(res, 200, { ok: true });
      }
      if (!this.vars.has(key))
        return this.error(res, 404, 'Not Found', `variable ${key} is not set`);
      const v = this.vars.get(key);
      if (key.startsWith('chunked')) {
        // no Content-Length: node answers with Transfer-Encoding: chunked
        res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
        const s = Buffer.from(isRaw ? raw(v) : JSON.stringify({ key, value: v }));
        const half = Math.floor(s.length / 2);
        res.write(s.subarray(0, half));
        setTimeout(() => res.end(s.subarray(half)), 20);
        return;
      }
      return isRaw ? this.send(res, 200, raw(v), true) : this.send(res, 200, { key, value: v });
    }
    const route = `${req.method} ${p}`;
    switch (route) {
      case 'GET /runtime/v1/context':
        return this.send(res, 200, CONTEXT);
      case 'GET /runtime/v1/input':
        return isRaw
          ? this.send(res, 200, raw(this.input), true)
          : this.send(res, 200, { data: this.input });
      case 'POST /runtime/v1/output':
        if (!('text' in json) && !('data' in json))
          return this.error(res, 400, 'Bad Request', 'data?');
        this.output = 'text' in json ? auto(json.text) : json.data;
        return this.send(res, 200, { ok: true });
      case 'POST /runtime/v1/condition':
        if (typeof json.condition !== 'boolean') {
          return this.error(res, 400, 'Bad Request', 'condition must be a boolean value');
        }
        this.condition = json.condition;
        return this.send(res, 200, { ok: true });
      case 'POST /runtime/v1/tool-actions':
        if (json.tool === 'fail') return this.error(res, 400, 'Bad Request', 'tool failed: "boom"');
        return this.send(res, 200, {
          result: { tool: json.tool, action: json.action, params: json.params },
        });
    }
    return this.error(res, 404, 'Not Found', `Cannot ${route}`);
  }
}

/** A server answering every request with a canned byte string: HTTP framing cases. */
class CannedServer {
  next = '';
  server = net.createServer((sock) => {
    let head = '';
    sock.on('data', (b) => {
      head += b.toString('latin1');
      if (head.includes('\r\n\r\n')) sock.end(this.next, 'latin1');
    });
    sock.on('error', () => undefined);
  });
  async listen(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return (this.server.address() as net.AddressInfo).port;
  }
}

// ---------------------------------------------------------------- running scripts

let tmp: string;
let helpers: string;
let wd: string;
let api: FakeApi;
let apiPort: number;
let canned: CannedServer;
let cannedPort: number;
let closedPort: number;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-helpers-api-'));
  helpers = path.join(tmp, 'helpers');
  fs.cpSync(SRC_HELPERS, helpers, { recursive: true });
  wd = path.join(tmp, 'run');
  fs.mkdirSync(wd);
  api = new FakeApi();
  apiPort = await api.listen();
  canned = new CannedServer();
  cannedPort = await canned.listen();
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  closedPort = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
});

afterAll(async () => {
  await new Promise((r) => api.server.close(r));
  await new Promise((r) => canned.server.close(r));
  fs.rmSync(tmp, { recursive: true, force: true });
});

beforeEach(() => {
  api.vars.clear();
  api.seen = [];
  api.input = null;
  api.output = undefined;
  api.condition = undefined;
});

interface Result {
  code: number | null;
  stdout: Buffer;
  out: string;
  err: string;
}

/** Async: the stand-in API runs in this process. */
/** Runs `script` against a port that refuses for 1.2 s, then serves `input`. */
async function refusedThenBack(lang: Lang, script: string, input: unknown): Promise<Result> {
  const late = new FakeApi();
  late.input = input;
  const t0 = Date.now();
  const running = run(lang, script, {
    CRONIUM_API_ENDPOINT: `http://127.0.0.1:${closedPort}`,
    CRONIUM_API_RETRY_SECONDS: '20',
  });
  await new Promise((r) => setTimeout(r, 1200));
  await late.listen(closedPort);
  try {
    const res = await running;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1200);
    return res;
  } finally {
    await new Promise((r) => late.server.close(r));
  }
}

function run(
  lang: Lang,
  script: string,
  env: Record<string, string> = {},
  stdin = '',
): Promise<Result> {
  const file = path.join(wd, 'script');
  fs.writeFileSync(file, script);
  const fullEnv: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    LANG: 'C.UTF-8',
    SHLVL: '1', // else bash, its stdin a socket (node's pipes), would read ~/.bashrc
    PYTHONDONTWRITEBYTECODE: '1',
    CRONIUM_HELPER_MODE: 'api',
    CRONIUM_API_ENDPOINT: `http://127.0.0.1:${apiPort}`,
    CRONIUM_API_TOKEN: TOKEN,
    CRONIUM_WORK_DIR: wd,
    // a refused connection fails at once here, unless a test says otherwise
    CRONIUM_API_RETRY_SECONDS: '0',
    ...env,
  };
  let cmd: string;
  let args: string[];
  if (lang === 'bash') {
    fullEnv.BASH_ENV = path.join(helpers, 'bash-env.sh'); // the stub the runner sets: loads cronium.sh on first use
    [cmd, args] = ['bash', [file]];
  } else if (lang === 'python') {
    fullEnv.PYTHONPATH = helpers;
    [cmd, args] = ['python3', [file]];
  } else {
    fullEnv.NODE_PATH = helpers;
    [cmd, args] = ['node', ['-r', path.join(helpers, 'cronium.js'), file]];
  }
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: wd, env: fullEnv });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('close', (code) => {
      const stdout = Buffer.concat(out);
      resolve({
        code,
        stdout,
        out: stdout.toString('utf8'),
        err: Buffer.concat(err).toString('utf8'),
      });
    });
    // A script that exits without reading its stdin closes the pipe first: not an error.
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin);
  });
}

const nulFile = (name: string, items: string[]) =>
  fs.writeFileSync(path.join(wd, name), items.map((s) => `${s}\0`).join(''));
const splitNul = (b: Buffer) => b.toString('utf8').split('\0').slice(0, -1);

/** Every byte but A-Za-z0-9 - . _ ~ as %XX: what all three clients send. */
const enc = (key: string) =>
  [...Buffer.from(key, 'utf8')]
    .map((b) =>
      /[A-Za-z0-9\-._~]/.test(String.fromCharCode(b))
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, '0')}`,
    )
    .join('');

const KEYS = ['my key/with spaces ✓ é', "k'ey]$(x)`y`[0]?#&=+%41!*()", 'plain-Key_1.0~', '日本語'];
const VALUES = [
  `it's "quoted" '' \\' \\"`,
  'line1\nline2\n\nline4\n\n',
  '$(touch /nonexistent/pwned) `id` ${HOME}',
  'héllo ✓ 🚀 \\n \\u00e9 \\',
  '"a JSON string"',
  '{"a": [1, "x"]}',
  '',
];

// ---------------------------------------------------------------- bash

describe('bash client (cronium.sh over /dev/tcp)', () => {
  it('setVariable/getVariable: percent-encoded keys, text/plain PUT, raw GET, values unchanged', async () => {
    const pairs: [string, string][] = [
      ...KEYS.map((k, i): [string, string] => [k, VALUES[i]]),
      ...VALUES.map((v, i): [string, string] => [`v${i}`, v]),
    ];
    nulFile('pairs', pairs.flat());
    const res = await run(
      'bash',
      `set -euo pipefail
while IFS= read -r -d '' k && IFS= read -r -d '' v; do cronium.setVariable "$k" "$v"; done <pairs
while IFS= read -r -d '' k && IFS= read -r -d '' v; do cronium.getVariable "$k"; printf '\\0'; done <pairs
`,
    );
    expect(res.err).toBe('');
    expect(res.code).toBe(0);
    expect(splitNul(res.stdout)).toEqual(pairs.map(([, v]) => raw(auto(v))));
    for (const [k, v] of pairs) expect(api.vars.get(k)).toEqual(auto(v));
    const puts = api.seen.filter((s) => s.method === 'PUT');
    expect(puts).toEqual(
      pairs.map(([k, v]) => ({
        method: 'PUT',
        url: `/runtime/v1/variables/${enc(k)}`,
        auth: `Bearer ${TOKEN}`,
        type: 'text/plain; charset=utf-8',
        body: v,
      })),
    );
    const gets = api.seen.filter((s) => s.method === 'GET');
    expect(gets.map((s) => s.url)).toEqual(
      pairs.map(([k]) => `/runtime/v1/variables/${enc(k)}?format=raw`),
    );
    expect(gets.every((s) => s.auth === `Bearer ${TOKEN}` && s.type === undefined)).toBe(true);
  });

  it('raw reads: strings raw, other values as JSON; unset is silent exit 1; input and event', async () => {
    api.vars.set('s', 'multi\nline ✓\n');
    api.vars.set('o', { a: [1, 'é'] });
    api.vars.set('n', null);
    api.vars.set('chunked', 'x'.repeat(5000) + 'é✓');
    api.input = 'raw input $(x)\n';
    const res = await run(
      'bash',
      `for k in s o n chunked; do cronium.getVariable "$k"; printf '\\0%s\\0' $?; done
cronium.getVariable missing; printf '\\0%s\\0' $?
cronium.input; printf '\\0'
cronium.event; printf '\\0'
`,
    );
    expect(res.err).toBe('');
    expect(splitNul(res.stdout)).toEqual([
      'multi\nline ✓\n',
      '0',
      '{"a":[1,"é"]}',
      '0',
      'null',
      '0',
      'x'.repeat(5000) + 'é✓',
      '0',
      '',
      '1',
      'raw input $(x)\n',
      JSON.stringify(CONTEXT),
    ]);
    expect(api.seen.map((s) => `${s.method} ${s.url}`).slice(-2)).toEqual([
      'GET /runtime/v1/input?format=raw',
      'GET /runtime/v1/context',
    ]);
  });

  it('output (text/plain, also from stdin), setCondition, toolAction', async () => {
    const res = await run(
      'bash',
      `set -euo pipefail
cronium.output '{"a":1}'
echo 'plain text' | cronium.output
cronium.setCondition true
cronium.toolAction 'we"ird
tool' send '{"to":["a"],"n":1}'; echo
cronium.toolAction noparams act; echo
cronium.toolAction fail act '{}' || echo "rc=$?"
`,
    );
    expect(res.out).toBe(
      '{"tool":"we\\"ird\\ntool","action":"send","params":{"to":["a"],"n":1}}\n' +
        '{"tool":"noparams","action":"act","params":{}}\nrc=1\n',
    );
    expect(res.err).toBe('cronium.toolAction: HTTP 400: tool failed: "boom"\n');
    expect(api.output).toBe('plain text');
    expect(api.condition).toBe(true);
    const posts = api.seen.filter((s) => s.method === 'POST');
    expect(posts.map((s) => [s.url, s.type, s.body])).toEqual([
      ['/runtime/v1/output', 'text/plain; charset=utf-8', '{"a":1}'],
      ['/runtime/v1/output', 'text/plain; charset=utf-8', 'plain text'],
      ['/runtime/v1/condition', 'application/json', '{"condition":true}'],
      [
        '/runtime/v1/tool-actions',
        'application/json',
        '{"tool":"we\\"ird\\ntool","action":"send","params":{"to":["a"],"n":1}}',
      ],
      [
        '/runtime/v1/tool-actions',
        'application/json',
        '{"tool":"noparams","action":"act","params":{}}',
      ],
      [
        '/runtime/v1/tool-actions',
        'application/json',
        '{"tool":"fail","action":"act","params":{}}',
      ],
    ]);
  });

  it('non-2xx answers: the message on stderr, exit 1', async () => {
    const res = await run(
      'bash',
      `cronium.getVariable k; echo "rc=$?"
cronium.setVariable k v; echo "rc=$?"
cronium.input; echo "rc=$?"
CRONIUM_API_TOKEN=good cronium.setCondition false; echo "rc=$?"`,
      { CRONIUM_API_TOKEN: 'wrong' },
    );
    expect(res.out).toBe('rc=1\nrc=1\nrc=1\nrc=1\n');
    expect(res.err).toBe(
      ['getVariable', 'setVariable', 'input', 'setCondition']
        .map((f) => `cronium.${f}: HTTP 401: bad token\n`)
        .join(''),
    );
    expect(api.seen.map((s) => s.auth)).toEqual([
      'Bearer wrong',
      'Bearer wrong',
      'Bearer wrong',
      'Bearer good',
    ]);
  });

  it('a refused connection is tried again until the endpoint is back (a take-over re-forwarding the tunnel)', async () => {
    const res = await refusedThenBack('bash', 'echo "got=$(cronium.input)"', 'back');
    expect([res.out, res.err]).toEqual(['got=back\n', '']);
  });

  it('no server, a bad endpoint, an endpoint with a path prefix', async () => {
    let res = await run('bash', 'cronium.input; echo "rc=$?"', {
      CRONIUM_API_ENDPOINT: `http://127.0.0.1:${closedPort}`,
    });
    expect([res.out, res.err]).toEqual([
      'rc=1\n',
      `cronium.input: cannot connect to http://127.0.0.1:${closedPort}\n`,
    ]);
    res = await run('bash', 'cronium.input; echo "rc=$?"', { CRONIUM_API_ENDPOINT: 'https://x:1' });
    expect([res.out, res.err]).toEqual([
      'rc=1\n',
      "cronium.input: CRONIUM_API_ENDPOINT must be http://host:port (got 'https://x:1')\n",
    ]);
    api.input = { a: 1 };
    res = await run('bash', 'cronium.input', {
      CRONIUM_API_ENDPOINT: `http://127.0.0.1:${apiPort}/prefix/`,
    });
    expect([res.out, res.err]).toEqual(['{"a":1}', '']);
    expect(api.seen.map((s) => s.url)).toEqual(['/prefix/runtime/v1/input?format=raw']);
  });

  it('HTTP framing: close-delimited and chunked bodies, header case, a bad status line', async () => {
    const env = { CRONIUM_API_ENDPOINT: `http://127.0.0.1:${cannedPort}` };
    canned.next = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil\r\nclose\n';
    let res = await run('bash', 'cronium.input', env);
    expect([res.out, res.err]).toEqual(['until\r\nclose\n', '']);
    canned.next =
      'HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\nX-Other: a:b\r\n\r\n' +
      '5;ext=1\r\nhel\nl\r\nA\r\no, world\r\n\r\n0\r\nTrailer: x\r\n\r\n';
    res = await run('bash', 'cronium.input', env);
    expect([res.out, res.err]).toEqual(['hel\nlo, world\r\n', '']);
    canned.next = 'HTTP/1.0 500\r\ncontent-length: 2\r\n\r\n{}';
    res = await run('bash', 'cronium.event; echo "rc=$?"', env);
    expect([res.out, res.err]).toEqual(['rc=1\n', 'cronium.event: HTTP 500: {}\n']);
    canned.next = 'SSH-2.0-OpenSSH_9.2\r\n';
    res = await run('bash', 'cronium.event; echo "rc=$?"', env);
    expect([res.out, res.err]).toEqual([
      'rc=1\n',
      `cronium.event: bad HTTP response from http://127.0.0.1:${cannedPort} for GET /runtime/v1/context\n`,
    ]);
  });

  it("keeps the caller's fd 9, options and locale; big values", async () => {
    const big = 'é✓ab\n'.repeat(20000); // 160 KB
    nulFile('big', [big]);
    const res = await run(
      'bash',
      `set -euo pipefail
exec 9>"$PWD/fd9"
o1=$-
IFS= read -r -d '' v <big || :
t0=$SECONDS
cronium.setVariable big "$v"
got=$(cronium.getVariable big; printf x)
[[ "\${got%x}" == "$v" ]] && echo same
echo "slow=$(( SECONDS - t0 > 20 ))"
echo still-open >&9
s='é'; echo "$o1 $- \${#s}"
`,
    );
    expect(res.err).toBe('');
    expect(res.out).toBe('same\nslow=0\nehuB ehuB 1\n');
    expect(fs.readFileSync(path.join(wd, 'fd9'), 'utf8')).toBe('still-open\n');
    expect(api.vars.get('big')).toBe(big);
  });
});

// ---------------------------------------------------------------- python and node

const PY = {
  roundTrip: `import json
data = json.load(open("data.json", encoding="utf-8"))
for k, v in data:
    cronium.set_variable(k, v)
print(json.dumps([cronium.getVariable(k) for k, _ in data] + [cronium.getVariable("missing")]))
`,
  others: `import json
res = {"input": cronium.input(), "event": cronium.event()}
cronium.output({"a": [1, "é"]})
cronium.setCondition(False)
res["tool"] = cronium.tool_action("slack", "send", {"text": "hi"})
res["toolNoParams"] = cronium.toolAction("t", "a")
print(json.dumps(res))
`,
  inputOnly: `import json
print(json.dumps(cronium.input()))
`,
  errors: `import os
def attempt(f):
    try:
        f()
        print("ok")
    except cronium.CroniumError as e:
        print(e.status, e)
attempt(lambda: cronium.toolAction("fail", "x"))
attempt(lambda: cronium.getVariable("k"))
os.environ["CRONIUM_API_TOKEN"] = "wrong"
attempt(lambda: cronium.setVariable("k", 1))
os.environ["CRONIUM_API_ENDPOINT"] = "http://127.0.0.1:CLOSED"
attempt(cronium.input)
`,
};

const JS = {
  roundTrip: `const data = JSON.parse(require('fs').readFileSync('data.json', 'utf8'));
(async () => {
  for (const [k, v] of data) await cronium.setVariable(k, v);
  const got = [];
  for (const [k] of data) got.push(await cronium.getVariable(k));
  const missing = await cronium.getVariable('missing');
  console.log(JSON.stringify([...got, missing === undefined ? null : 'defined']));
})();
`,
  others: `(async () => {
  const res = { input: await cronium.input(), event: await cronium.event() };
  await cronium.output({ a: [1, 'é'] });
  await cronium.setCondition(false);
  res.tool = await cronium.toolAction('slack', 'send', { text: 'hi' });
  res.toolNoParams = await cronium.toolAction('t', 'a');
  console.log(JSON.stringify(res));
})();
`,
  inputOnly: `(async () => console.log(JSON.stringify(await cronium.input())))();
`,
  errors: `(async () => {
  const attempt = (f) => f().then(() => console.log('ok'), (e) => console.log(e instanceof cronium.CroniumError ? e.status : 'not-a-CroniumError', e.message));
  await attempt(() => cronium.toolAction('fail', 'x'));
  await attempt(() => cronium.getVariable('k'));
  process.env.CRONIUM_API_TOKEN = 'wrong';
  await attempt(() => cronium.setVariable('k', 1));
  process.env.CRONIUM_API_ENDPOINT = 'http://127.0.0.1:CLOSED';
  await attempt(() => cronium.input());
})();
`,
};

describe.each([
  ['python', PY],
  ['node', JS],
] as [Lang, typeof PY][])('%s client (JSON bodies)', (lang, scripts) => {
  it('setVariable/getVariable: percent-encoded keys, {value} bodies, 404 is unset', async () => {
    const pairs: [string, unknown][] = [
      ...KEYS.map((k, i): [string, unknown] => [k, VALUES[i]]),
      ['obj', { nested: [1, 'é', null], q: `"'\n` }],
      ['nul', null],
      ['num', 1.5],
    ];
    fs.writeFileSync(path.join(wd, 'data.json'), JSON.stringify(pairs));
    const res = await run(lang, scripts.roundTrip);
    expect(res.err).toBe('');
    expect(res.code).toBe(0);
    expect(JSON.parse(res.out)).toEqual([...pairs.map(([, v]) => v), null]);
    for (const [k, v] of pairs) expect(api.vars.get(k)).toEqual(v);
    const puts = api.seen.filter((s) => s.method === 'PUT');
    expect(puts.map((s) => [s.url, s.type, s.auth, JSON.parse(s.body)])).toEqual(
      pairs.map(([k, v]) => [
        `/runtime/v1/variables/${enc(k)}`,
        'application/json',
        `Bearer ${TOKEN}`,
        { value: v },
      ]),
    );
    const gets = api.seen.filter((s) => s.method === 'GET');
    expect(gets.map((s) => [s.url, s.auth])).toEqual(
      [...pairs.map(([k]) => k), 'missing'].map((k) => [
        `/runtime/v1/variables/${enc(k)}`,
        `Bearer ${TOKEN}`,
      ]),
    );
  });

  it('input, event, output, setCondition, toolAction', async () => {
    api.input = { items: [1, 2], s: 'é' };
    const res = await run(lang, scripts.others);
    expect(res.err).toBe('');
    expect(JSON.parse(res.out)).toEqual({
      input: api.input,
      event: CONTEXT,
      tool: { tool: 'slack', action: 'send', params: { text: 'hi' } },
      toolNoParams: { tool: 't', action: 'a', params: {} },
    });
    expect(api.output).toEqual({ a: [1, 'é'] });
    expect(api.condition).toBe(false);
    expect(api.seen.map((s) => [s.method, s.url, s.type, s.body && JSON.parse(s.body)])).toEqual([
      ['GET', '/runtime/v1/input', undefined, ''],
      ['GET', '/runtime/v1/context', undefined, ''],
      ['POST', '/runtime/v1/output', 'application/json', { data: { a: [1, 'é'] } }],
      ['POST', '/runtime/v1/condition', 'application/json', { condition: false }],
      [
        'POST',
        '/runtime/v1/tool-actions',
        'application/json',
        { tool: 'slack', action: 'send', params: { text: 'hi' } },
      ],
      [
        'POST',
        '/runtime/v1/tool-actions',
        'application/json',
        { tool: 't', action: 'a', params: {} },
      ],
    ]);
    expect(api.seen.every((s) => s.auth === `Bearer ${TOKEN}`)).toBe(true);
  });

  it('a refused connection is tried again until the endpoint is back (a take-over re-forwarding the tunnel)', async () => {
    const res = await refusedThenBack(lang, scripts.inputOnly, { back: true });
    expect(res.err).toBe('');
    expect(JSON.parse(res.out)).toEqual({ back: true });
  });

  it('errors: CroniumError with the status and the server message', async () => {
    api.vars.set('k', 'v');
    const res = await run(lang, scripts.errors.replace('CLOSED', String(closedPort)));
    expect(res.err).toBe('');
    const none = lang === 'python' ? 'None' : 'undefined';
    expect(res.out.split('\n')).toEqual([
      '400 POST /runtime/v1/tool-actions: HTTP 400: tool failed: "boom"',
      'ok',
      `401 PUT /runtime/v1/variables/k: HTTP 401: bad token`,
      expect.stringMatching(
        new RegExp(`^${none} cannot reach http://127\\.0\\.0\\.1:${closedPort}: `),
      ),
      '',
    ]);
  });
});
