/**
 * Table-driven bad input over every REST route (src/**\/*.controller.ts) and the runtime
 * API (reached on its opt-in loopback port with the token of a real running target).
 * Every case must get a 4xx with the shared error body `{statusCode, error, message}`,
 * create nothing (database counts, a server's view, the running target's results) and run
 * nothing (no execution, no run directory on the sshd's baseDir, no marker file).
 */
import * as fs from 'node:fs';
import { STATUS_CODES } from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import {
  holdApiTarget,
  registerServer,
  runDirsIn,
  startApp,
  TestApp,
  waitForExecution,
} from './support/app';
import { rawRequest } from './support/raw-http';
import { freePort, SshdInstance, startSshd } from './support/sshd';

const CATEGORIES = [
  'wrong type',
  'missing field',
  'unknown field',
  'size limit',
  'depth limit',
  'invalid UTF-8 / lone surrogate',
  'path traversal',
  'shell metacharacters / newlines',
  'absurd numbers',
  'bad references',
] as const;
type Category = (typeof CATEGORIES)[number];

/** A body: an object is sent as JSON, a string as raw JSON text, a Buffer as raw bytes. */
type Body = Record<string, unknown> | string | Buffer;

interface Case {
  category: Category;
  name: string;
  api: 'rest' | 'runtime';
  method: string;
  path: string;
  body?: Body;
  contentType?: string;
  headers?: Record<string, string>;
}

const MARKER = `/tmp/cronium-bad-table-${process.pid}`;
const EVIL = [
  `$(touch ${MARKER})`,
  `\`touch ${MARKER}\``,
  `x; touch ${MARKER}`,
  `x | touch ${MARKER}`,
  `x && touch ${MARKER}`,
  `x\ntouch ${MARKER}`,
  `x\rtouch ${MARKER}`,
  `'; touch ${MARKER}; '`,
  `"; touch ${MARKER}; "`,
  `x > ${MARKER}`,
  `$IFS$(touch${'${IFS}'}${MARKER})`,
  `-oProxyCommand=touch ${MARKER}`,
];
const NUMBERS = [
  '1e308',
  '-1',
  '9007199254740993',
  '"NaN"',
  '"0x10"',
  '1.5',
  '1e999',
  '-1e999',
  '1e-7',
  '"1"',
  '0x10',
  '+1',
  'NaN',
  'Infinity',
  '1_000',
  '"1e3"',
  '[1]',
  '-9007199254740993',
];
const QUERY_NUMBERS = [
  '1e308',
  '-1',
  '9007199254740993',
  'NaN',
  '0x10',
  '1.5',
  'Infinity',
  '1e3',
  '',
  '%201',
  '1%00',
  '%E0%A5%A7', // a Devanagari digit one
  '-0',
  '+1',
  '1,2',
];
const TRAVERSAL_IDS = [
  '..',
  '..%2f..%2fetc%2fpasswd',
  '%2e%2e',
  '%2e%2e%2f%2e%2e%2fetc',
  '..%00',
  '%00',
  'a%00b',
  '....%2f%2f',
  '%252e%252e%252f',
  '..%5c..%5cwindows',
  '%c0%ae%c0%ae',
];
const INVALID_UTF8 = [
  [0xff],
  [0xc3, 0x28],
  [0xed, 0xa0, 0x80], // an encoded surrogate
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xc0, 0xaf], // overlong '/'
  [0xe2, 0x82], // truncated
  [0xf4, 0x90, 0x80, 0x80], // beyond U+10FFFF
];
const LONE = ['\\ud800', '\\udfff', 'a\\ud83dz', '\\ude00\\ud83d'];
const nested = (n: number) => '['.repeat(n) + ']'.repeat(n);

/** JSON text of `base` with the value at `at` (dotted path) replaced by raw JSON text. */
function withRaw(base: Record<string, unknown>, at: string, rawJson: string): string {
  const token = `"__RAW_${Math.random().toString(36).slice(2)}__"`;
  return JSON.stringify(setAt(base, at, JSON.parse(token))).replace(token, rawJson);
}
/** JSON text of `base` with one more key (raw JSON text, so `"__proto__"` and `"\\ud800"` stay keys). */
function withKey(base: Record<string, unknown>, rawKey: string, rawJson: string): string {
  const text = JSON.stringify(base);
  return text === '{}' ? `{${rawKey}:${rawJson}}` : `{${rawKey}:${rawJson},${text.slice(1)}`;
}
function setAt(base: Record<string, unknown>, at: string, value: unknown): Record<string, unknown> {
  const copy = structuredClone(base);
  const keys = at.split('.');
  let o: any = copy;
  for (const k of keys.slice(0, -1)) o = o[k];
  o[keys[keys.length - 1]] = value;
  return copy;
}
function deleteAt(base: Record<string, unknown>, at: string): Record<string, unknown> {
  const copy = structuredClone(base);
  const keys = at.split('.');
  let o: any = copy;
  for (const k of keys.slice(0, -1)) o = o[k];
  delete o[keys[keys.length - 1]];
  return copy;
}

type Kind =
  | 'str'
  | 'nullableStr'
  | 'int'
  | 'nullableInt'
  | 'bool'
  | 'nullableBool'
  | 'strArr'
  | 'obj'
  | 'enum'
  | 'nullableEnum'
  | 'env'
  | 'nullableEnv'
  | 'errors';
const notNull = (xs: string[]) => xs.filter((x) => x !== 'null');
const WRONG: Record<Kind, string[]> = {
  str: ['1', 'true', '[]', '{}', 'null', '["x"]'],
  nullableStr: ['1', 'true', '[]', '{}', '["x"]'],
  int: ['"1"', 'true', '[]', '{}', 'null', '1.5', '"one"'],
  bool: ['"true"', '1', '0', 'null', '[]', '{}', '"yes"'],
  strArr: ['"x"', '1', '{}', '[1]', '[null]', '[[]]', 'null', '[{}]', '[true]'],
  obj: ['"x"', '1', '[]', 'null', 'true'],
  enum: ['1', 'null', '[]', '"BASH"', '""', '{}', '"bash "'],
  env: ['"x"', '[]', '1', 'null', '{"A":1}', '{"A":null}', '{"A":[]}', '{"A":{}}', '{"A":true}'],
  errors: ['true', '[]', '{}', '"10"', '"10 %"', '"101%"', '"-1%"', '"1.5%"', '-1', '1.5'],
  nullableInt: [],
  nullableBool: [],
  nullableEnum: [],
  nullableEnv: [],
};
WRONG.nullableInt = notNull(WRONG.int);
WRONG.nullableBool = notNull(WRONG.bool);
WRONG.nullableEnum = notNull(WRONG.enum);
WRONG.nullableEnv = notNull(WRONG.env);

describe('bad input, table-driven: every route, every category', () => {
  let sshd: SshdInstance;
  let t: TestApp;
  let ds: DataSource;
  let serverId: string;
  let patchId: string;
  let base: string;
  let runtimePort: number;
  let token: string;
  let holdId: string;
  let tmp: string;
  const tally = new Map<Category, { tried: number; passed: number }>(
    CATEGORIES.map((c) => [c, { tried: 0, passed: 0 }]),
  );

  beforeAll(async () => {
    sshd = await startSshd();
    runtimePort = await freePort();
    t = await startApp({
      CRONIUM__LIMITS__MAX_SCRIPT_BYTES: '4096',
      CRONIUM__LIMITS__MAX_INPUT_BYTES: '4096',
      CRONIUM__RUNTIME__MAX_BODY_BYTES: '4096',
      CRONIUM__RUNTIME__LOOPBACK_PORT: String(runtimePort),
      CRONIUM__RUNTIME__BURST: '100000',
      CRONIUM__RUNTIME__RATE_PER_SECOND: '100000',
      CRONIUM__NOTIFICATIONS__ALLOW_LIST: '127.0.0.1:9',
    });
    ds = t.app.get(DataSource);
    base = `${sshd.dir}/base`;
    serverId = await registerServer(t, sshd, { baseDir: base, tags: ['bad-table'] });
    patchId = await registerServer(t, sshd, { name: 'patch-me', baseDir: base });
    // A target that stays running in API mode: its token reaches the runtime API.
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-bad-table-'));
    ({ id: holdId, token } = await holdApiTarget(t, serverId, tmp, 'bad-table'));
  });

  afterAll(async () => {
    const lines = CATEGORIES.map((c) => {
      const { tried, passed } = tally.get(c)!;
      return `  ${c.padEnd(34)} tried ${String(tried).padStart(4)}  passed ${String(passed).padStart(4)}`;
    });
    const tried = [...tally.values()].reduce((a, x) => a + x.tried, 0);
    const passed = [...tally.values()].reduce((a, x) => a + x.passed, 0);
    console.log(`bad-input table: ${tried} cases, ${passed} passed\n${lines.join('\n')}`);
    if (holdId) await t.http().post(`/v1/executions/${holdId}/cancel`).set(t.auth);
    if (holdId) await waitForExecution(t, holdId).catch(() => undefined);
    await t?.close();
    await sshd?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.rmSync(MARKER, { force: true });
  });

  /** Everything a bad request must leave as it was. */
  const state = async () => {
    const count = async (table: string) =>
      Number((await ds.query(`SELECT COUNT(*) AS n FROM ${table}`))[0].n);
    const runs = fs.existsSync(path.join(base, 'runs')) ? runDirsIn(base).length : 0;
    const patched = await t.http().get(`/v1/servers/${patchId}`).set(t.auth);
    const held = await t.http().get(`/v1/executions/${holdId}`).set(t.auth);
    return {
      executions: await count('executions'),
      targets: await count('execution_targets'),
      servers: await count('servers'),
      variables: await count('variables'),
      notifications: await count('notifications'),
      runDirs: runs,
      marker: fs.existsSync(MARKER),
      patchTarget: patched.body,
      held: { output: held.body.targets[0].output, condition: held.body.targets[0].condition },
    };
  };

  const send = (c: Case) => {
    let body: string | Buffer | undefined;
    if (c.body === undefined) body = undefined;
    else if (Buffer.isBuffer(c.body) || typeof c.body === 'string') body = c.body;
    else body = JSON.stringify(c.body);
    const auth = c.api === 'rest' ? t.auth.Authorization : `Bearer ${token}`;
    const port = c.api === 'rest' ? Number(new URL(t.url).port) : runtimePort;
    return rawRequest(port, c.method, c.path, {
      headers: {
        Authorization: auth,
        ...(body !== undefined ? { 'Content-Type': c.contentType ?? 'application/json' } : {}),
        ...c.headers,
      },
      body,
    });
  };

  /** Runs every case of a category; returns what went wrong (empty: all passed). */
  const runAll = async (category: Category, cases: Case[]) => {
    const failures: string[] = [];
    const tl = tally.get(category)!;
    let before = await state();
    for (const c of cases) {
      tl.tried++;
      const why: string[] = [];
      try {
        const r = await send(c);
        if (r.status < 400 || r.status >= 500 || r.status === 401 || r.status === 403) {
          why.push(`status ${r.status}`);
        }
        const b = r.body;
        if (
          typeof b !== 'object' ||
          b === null ||
          Object.keys(b).sort().join() !== 'error,message,statusCode' ||
          b.statusCode !== r.status ||
          b.error !== STATUS_CODES[r.status] ||
          typeof b.message !== 'string' ||
          !b.message
        ) {
          why.push(`body ${r.text.slice(0, 200)}`);
        }
        const after = await state();
        if (JSON.stringify(after) !== JSON.stringify(before)) {
          why.push(`state changed ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
          before = after;
        }
      } catch (e) {
        why.push(`request failed: ${(e as Error).message}`);
      }
      if (why.length) failures.push(`${c.method} ${c.path} [${c.name}]: ${why.join('; ')}`);
      else tl.passed++;
    }
    return failures;
  };

  // ----------------------------------------------------------------- the routes' bodies

  const serverBody = () => ({
    name: `bad-${Math.random().toString(36).slice(2, 10)}`,
    host: '127.0.0.1',
    port: sshd.port,
    username: 'root',
    password: 'pw',
  });
  const jobBody = () => ({
    script: { type: 'bash', content: `touch ${MARKER}` },
    targets: { serverIds: [serverId] },
  });
  const SERVER_FIELDS: [string, Kind, boolean][] = [
    ['name', 'str', true],
    ['host', 'str', true],
    ['port', 'int', false],
    ['username', 'str', true],
    ['password', 'str', false],
    ['privateKey', 'str', false],
    ['passphrase', 'str', false],
    ['hostKey', 'nullableStr', false],
    ['tags', 'strArr', false],
    ['baseDir', 'nullableStr', false],
    ['jumpServerId', 'nullableStr', false],
    ['becomePassword', 'nullableStr', false],
  ];
  // An optional job field given as null means absent (clients echo the nulls of an
  // execution view); only the target lists refuse it.
  const JOB_FIELDS: [string, Kind, boolean][] = [
    ['name', 'nullableStr', false],
    ['jobId', 'nullableStr', false],
    ['eventId', 'nullableStr', false],
    ['userId', 'nullableStr', false],
    ['script', 'obj', true],
    ['script.type', 'enum', true],
    ['script.content', 'str', true],
    ['targets', 'obj', true],
    ['targets.serverIds', 'strArr', false],
    ['targets.tags', 'strArr', false],
    ['env', 'nullableEnv', false],
    ['timeoutSeconds', 'nullableInt', false],
    ['helperMode', 'nullableEnum', false],
    ['concurrency', 'nullableInt', false],
    ['maxErrors', 'errors', false],
    ['failFast', 'nullableBool', false],
  ];
  interface Route {
    api: 'rest' | 'runtime';
    method: string;
    path: () => string;
    body: () => Record<string, unknown>;
    fields: [string, Kind, boolean][];
    /** Fields holding any JSON (depth and surrogate cases go there). */
    free: string[];
    /** String fields (surrogate and invalid byte cases go there). */
    strings: string[];
  }
  const routes = (): Route[] => [
    {
      api: 'rest',
      method: 'POST',
      path: () => '/v1/servers',
      body: serverBody,
      fields: SERVER_FIELDS,
      free: [],
      strings: ['name', 'host', 'username', 'password', 'baseDir'],
    },
    {
      api: 'rest',
      method: 'PATCH',
      path: () => `/v1/servers/${patchId}`,
      body: () => ({}),
      fields: SERVER_FIELDS.map(([f, k]) => [f, k, false]),
      free: [],
      strings: ['name', 'host', 'username', 'password', 'baseDir'],
    },
    {
      api: 'rest',
      method: 'POST',
      path: () => '/v1/jobs',
      body: jobBody,
      fields: JOB_FIELDS,
      free: ['input'],
      strings: ['name', 'jobId', 'eventId', 'userId', 'script.content'],
    },
    {
      api: 'rest',
      method: 'PUT',
      path: () => '/v1/variables/bad-table/k1',
      body: () => ({ value: 1 }),
      fields: [],
      free: ['value'],
      strings: [],
    },
    {
      api: 'runtime',
      method: 'POST',
      path: () => '/runtime/v1/output',
      body: () => ({ data: 1 }),
      fields: [],
      free: ['data'],
      strings: [],
    },
    {
      api: 'runtime',
      method: 'POST',
      path: () => '/runtime/v1/condition',
      body: () => ({ condition: true }),
      fields: [['condition', 'bool', true]],
      free: [],
      strings: [],
    },
    {
      api: 'runtime',
      method: 'PUT',
      path: () => '/runtime/v1/variables/k1',
      body: () => ({ value: 1 }),
      fields: [],
      free: ['value'],
      strings: [],
    },
    {
      api: 'runtime',
      method: 'POST',
      path: () => '/runtime/v1/tool-actions',
      body: () => ({ tool: 'no-such-tool', action: 'a', params: {} }),
      fields: [
        ['tool', 'str', true],
        ['action', 'str', true],
      ],
      free: [],
      strings: [],
    },
  ];
  const requiredOf: Record<string, string[]> = {
    '/runtime/v1/output': ['data'],
    '/runtime/v1/variables/k1': ['value'],
    '/v1/variables/bad-table/k1': ['value'],
  };
  const caseOf = (r: Route, category: Category, name: string, body: Body, extra = {}): Case => ({
    category,
    name,
    api: r.api,
    method: r.method,
    path: r.path(),
    body,
    ...extra,
  });

  it('the base bodies are valid (so each case tests only its own mistake)', async () => {
    const s = await t.http().post('/v1/servers').set(t.auth).send(serverBody());
    expect(s.status).toBe(201);
    expect((await t.http().delete(`/v1/servers/${s.body.id}`).set(t.auth)).status).toBe(204);
    const j = await t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .send({ ...jobBody(), script: { type: 'bash', content: 'true' } });
    expect(j.status).toBe(202);
    expect((await waitForExecution(t, j.body.id)).status).toBe('succeeded');
    for (const r of routes().filter((x) => x.api === 'runtime')) {
      const res = await send(caseOf(r, 'wrong type', 'base', r.body()));
      // the tool is not configured: 4xx, but the body itself passed validation
      if (r.path().endsWith('tool-actions'))
        expect(res.body.message).not.toMatch(/tool and action/);
      else expect([r.path(), res.status]).toEqual([r.path(), 200]);
    }
    // the runtime base calls above set output, condition and k1: that is the baseline now
  });

  it('wrong types in every field', async () => {
    const cases: Case[] = [];
    for (const r of routes()) {
      for (const [f, kind] of r.fields) {
        for (const v of WRONG[kind])
          cases.push(caseOf(r, 'wrong type', `${f}=${v}`, withRaw(r.body(), f, v)));
      }
      // the body itself of the wrong type
      for (const v of ['[]', '[{}]', '"x"', '1', 'null', 'true']) {
        cases.push(caseOf(r, 'wrong type', `body=${v}`, v));
      }
    }
    // become is not in the base job body (that would need sudo on this sshd)
    const become = ['"x"', '1', '[]', 'true', '{}', '{"method":1}', '{"method":"su"}'];
    for (const u of WRONG.nullableStr) become.push(`{"method":"sudo","user":${u}}`);
    for (const v of become) {
      cases.push(caseOf(routes()[2], 'wrong type', `become=${v}`, withRaw(jobBody(), 'become', v)));
    }
    // a text/plain condition that is not a boolean
    for (const v of ['yes', '1', 'TRUE', 'true false', '']) {
      cases.push({
        category: 'wrong type',
        name: `text condition ${v}`,
        api: 'runtime',
        method: 'POST',
        path: '/runtime/v1/condition',
        body: v,
        contentType: 'text/plain',
      });
    }
    expect(await runAll('wrong type', cases)).toEqual([]);
  });

  it('missing required fields', async () => {
    const cases: Case[] = [];
    for (const r of routes()) {
      const required = [
        ...r.fields.filter(([, , req]) => req).map(([f]) => f),
        ...(requiredOf[r.path()] ?? []),
      ];
      for (const f of required)
        cases.push(caseOf(r, 'missing field', `no ${f}`, deleteAt(r.body(), f)));
      if (required.length) cases.push(caseOf(r, 'missing field', 'empty body', {}));
    }
    // a server needs one credential; a job needs a target
    const noCred = deleteAt(serverBody(), 'password');
    cases.push(caseOf(routes()[0], 'missing field', 'no credential', noCred));
    cases.push(caseOf(routes()[2], 'missing field', 'no target', setAt(jobBody(), 'targets', {})));
    cases.push(
      caseOf(
        routes()[2],
        'missing field',
        'empty targets',
        setAt(jobBody(), 'targets', { serverIds: [], tags: [] }),
      ),
    );
    expect(await runAll('missing field', cases)).toEqual([]);
  });

  it('unknown fields, top-level and nested, including prototype names', async () => {
    const cases: Case[] = [];
    const names = [
      'surprise',
      'constructor',
      '__proto__',
      'toString',
      'hasOwnProperty',
      'valueOf',
      'id',
      'createdAt',
    ];
    for (const r of routes()) {
      for (const n of names)
        cases.push(caseOf(r, 'unknown field', n, withKey(r.body(), JSON.stringify(n), '1')));
    }
    for (const n of names) {
      for (const at of ['script', 'targets']) {
        const job = jobBody() as any;
        const text = JSON.stringify(job).replace(`"${at}":{`, `"${at}":{${JSON.stringify(n)}:1,`);
        cases.push(caseOf(routes()[2], 'unknown field', `${at}.${n}`, text));
      }
    }
    // PATCH may not change what is not a server field
    for (const n of ['authType', 'hostKeyFingerprint', 'hostKeySource', 'updatedAt']) {
      cases.push(caseOf(routes()[1], 'unknown field', n, { [n]: 'x' }));
    }
    expect(await runAll('unknown field', cases)).toEqual([]);
  });

  it('size limits', async () => {
    const [srv, patch, job, variable] = routes();
    const cases: Case[] = [
      caseOf(srv, 'size limit', 'name 201', setAt(serverBody(), 'name', 'n'.repeat(201))),
      caseOf(srv, 'size limit', 'name empty', setAt(serverBody(), 'name', '')),
      caseOf(srv, 'size limit', 'host 256', setAt(serverBody(), 'host', 'h'.repeat(256))),
      caseOf(srv, 'size limit', 'host empty', setAt(serverBody(), 'host', '')),
      caseOf(srv, 'size limit', 'username 65', setAt(serverBody(), 'username', 'u'.repeat(65))),
      caseOf(srv, 'size limit', 'password 1025', setAt(serverBody(), 'password', 'p'.repeat(1025))),
      caseOf(srv, 'size limit', 'password empty', setAt(serverBody(), 'password', '')),
      caseOf(
        srv,
        'size limit',
        'passphrase 1025',
        setAt(serverBody(), 'passphrase', 'p'.repeat(1025)),
      ),
      caseOf(
        srv,
        'size limit',
        '51 tags',
        setAt(
          serverBody(),
          'tags',
          Array.from({ length: 51 }, (_, i) => `t${i}`),
        ),
      ),
      caseOf(srv, 'size limit', 'tag 65', setAt(serverBody(), 'tags', ['t'.repeat(65)])),
      caseOf(srv, 'size limit', 'tag empty', setAt(serverBody(), 'tags', [''])),
      caseOf(
        srv,
        'size limit',
        'baseDir 201',
        setAt(serverBody(), 'baseDir', '/' + 'b'.repeat(200)),
      ),
      caseOf(
        srv,
        'size limit',
        'privateKey 1 MiB',
        setAt(serverBody(), 'privateKey', 'k'.repeat(1 << 20)),
      ),
      caseOf(patch, 'size limit', 'name 201', { name: 'n'.repeat(201) }),
      caseOf(patch, 'size limit', 'tags 51', {
        tags: Array.from({ length: 51 }, (_, i) => `t${i}`),
      }),
      caseOf(job, 'size limit', 'name 201', setAt(jobBody(), 'name', 'n'.repeat(201))),
      caseOf(job, 'size limit', 'jobId 201', setAt(jobBody(), 'jobId', 'j'.repeat(201))),
      caseOf(job, 'size limit', 'eventId 201', setAt(jobBody(), 'eventId', 'e'.repeat(201))),
      caseOf(job, 'size limit', 'userId 201', setAt(jobBody(), 'userId', 'u'.repeat(201))),
      caseOf(job, 'size limit', 'userId empty', setAt(jobBody(), 'userId', '')),
      caseOf(
        job,
        'size limit',
        'script 4097 bytes',
        setAt(jobBody(), 'script.content', 'x'.repeat(4097)),
      ),
      caseOf(
        job,
        'size limit',
        'script 4096 bytes of ✓',
        setAt(jobBody(), 'script.content', '✓'.repeat(1366)),
      ),
      caseOf(job, 'size limit', 'input 4097 bytes', setAt(jobBody(), 'input', 'x'.repeat(4096))),
      caseOf(
        job,
        'size limit',
        '201 env vars',
        setAt(
          jobBody(),
          'env',
          Object.fromEntries(Array.from({ length: 201 }, (_, i) => [`V${i}`, 'x'])),
        ),
      ),
      caseOf(
        job,
        'size limit',
        'env name 129',
        setAt(jobBody(), 'env', { ['N'.repeat(129)]: 'x' }),
      ),
      caseOf(job, 'size limit', 'env name empty', setAt(jobBody(), 'env', { '': 'x' })),
      caseOf(
        job,
        'size limit',
        '10001 server ids',
        setAt(
          jobBody(),
          'targets.serverIds',
          Array.from({ length: 10001 }, () => serverId),
        ),
      ),
      caseOf(
        job,
        'size limit',
        '101 tags',
        setAt(
          jobBody(),
          'targets.tags',
          Array.from({ length: 101 }, (_, i) => `t${i}`),
        ),
      ),
      caseOf(job, 'size limit', 'tag 65', setAt(jobBody(), 'targets.tags', ['t'.repeat(65)])),
      caseOf(
        job,
        'size limit',
        'timeout past a week',
        setAt(jobBody(), 'timeoutSeconds', 7 * 24 * 3600 + 1),
      ),
      caseOf(job, 'size limit', 'concurrency 10001', setAt(jobBody(), 'concurrency', 10001)),
      caseOf(job, 'size limit', 'maxErrors 1000001', setAt(jobBody(), 'maxErrors', 1000001)),
      caseOf(
        job,
        'size limit',
        'body past the body limit',
        setAt(jobBody(), 'input', 'x'.repeat(300 * 1024)),
      ),
      caseOf(variable, 'size limit', 'body past the body limit', { value: 'x'.repeat(300 * 1024) }),
      {
        category: 'size limit',
        name: 'key 201 bytes',
        api: 'rest',
        method: 'PUT',
        path: `/v1/variables/u1/${'k'.repeat(201)}`,
        body: { value: 1 },
      },
      {
        category: 'size limit',
        name: 'key 201 bytes of é',
        api: 'rest',
        method: 'GET',
        path: `/v1/variables/u1/${encodeURIComponent('é'.repeat(101))}`,
      },
      {
        category: 'size limit',
        name: 'userId 201',
        api: 'rest',
        method: 'PUT',
        path: `/v1/variables/${'u'.repeat(201)}/k`,
        body: { value: 1 },
      },
      {
        category: 'size limit',
        name: 'Idempotency-Key 201',
        api: 'rest',
        method: 'POST',
        path: '/v1/jobs',
        body: jobBody(),
        headers: { 'Idempotency-Key': 'i'.repeat(201) },
      },
      {
        category: 'size limit',
        name: 'Idempotency-Key empty',
        api: 'rest',
        method: 'POST',
        path: '/v1/jobs',
        body: jobBody(),
        headers: { 'Idempotency-Key': '' },
      },
      {
        category: 'size limit',
        name: 'limit 201',
        api: 'rest',
        method: 'GET',
        path: '/v1/executions?limit=201',
      },
      {
        category: 'size limit',
        name: 'logs limit 10001',
        api: 'rest',
        method: 'GET',
        path: `/v1/executions/${holdId}/logs?limit=10001`,
      },
      {
        category: 'size limit',
        name: 'check timeout 121',
        api: 'rest',
        method: 'POST',
        path: `/v1/servers/${serverId}/check?timeoutSeconds=121`,
      },
      {
        category: 'size limit',
        name: 'cursor 100 KiB',
        api: 'rest',
        method: 'GET',
        path: `/v1/executions?cursor=${'A'.repeat(100 * 1024)}`,
      },
    ];
    for (const r of routes().filter((x) => x.api === 'runtime')) {
      const field = Object.keys(r.body())[0];
      cases.push(
        caseOf(r, 'size limit', 'body past maxBodyBytes', setAt(r.body(), field, 'x'.repeat(5000))),
      );
    }
    for (const method of ['GET', 'PUT']) {
      cases.push({
        category: 'size limit',
        name: `runtime key 201 bytes (${method})`,
        api: 'runtime',
        method,
        path: `/runtime/v1/variables/${'k'.repeat(201)}`,
        body: method === 'PUT' ? { value: 1 } : undefined,
      });
    }
    expect(await runAll('size limit', cases)).toEqual([]);
  });

  it('depth limits in every free-form or array field', async () => {
    const cases: Case[] = [];
    for (const r of routes()) {
      const arrays = r.fields
        .filter(([, k]) => k === 'strArr' || k === 'obj' || k === 'env' || k === 'nullableEnv')
        .map(([f]) => f);
      for (const f of [...r.free, ...arrays]) {
        for (const n of [65, 1000, 100_000]) {
          cases.push(caseOf(r, 'depth limit', `${f} ${n} deep`, withRaw(r.body(), f, nested(n))));
        }
        cases.push(
          caseOf(
            r,
            'depth limit',
            `${f} 65 deep in objects`,
            withRaw(r.body(), f, '{"a":'.repeat(65) + '1' + '}'.repeat(65)),
          ),
        );
      }
      cases.push(
        caseOf(r, 'depth limit', 'unknown field 65 deep', withRaw(r.body(), 'zz', nested(65))),
      );
    }
    for (const v of [nested(65), '{"a":'.repeat(70) + '1' + '}'.repeat(70)]) {
      for (const p of ['/runtime/v1/output', '/runtime/v1/variables/k1']) {
        cases.push({
          category: 'depth limit',
          name: `text/plain ${v.length}`,
          api: 'runtime',
          method: p.endsWith('output') ? 'POST' : 'PUT',
          path: p,
          body: v,
          contentType: 'text/plain',
        });
      }
    }
    expect(await runAll('depth limit', cases)).toEqual([]);
  });

  it('bytes that are not UTF-8 and lone surrogates, in every string and key', async () => {
    const cases: Case[] = [];
    for (const r of routes()) {
      const strings = [...r.strings, ...r.free];
      const firstString = r.fields.find(([, k]) => k === 'str' || k === 'nullableStr')?.[0];
      const into = [...new Set([...strings, ...(firstString ? [firstString] : [])])];
      for (const f of into.length ? into : [Object.keys(r.body())[0]]) {
        for (const bytes of INVALID_UTF8) {
          const text = withRaw(r.body(), f, '"a\u0001b"');
          const [head, tail] = text.split('\u0001');
          cases.push(
            caseOf(
              r,
              'invalid UTF-8 / lone surrogate',
              `${f} bytes ${bytes.join(',')}`,
              Buffer.concat([Buffer.from(head), Buffer.from(bytes), Buffer.from(tail)]),
            ),
          );
        }
        for (const lone of LONE) {
          cases.push(
            caseOf(
              r,
              'invalid UTF-8 / lone surrogate',
              `${f} ${lone}`,
              withRaw(r.body(), f, `"x${lone}y"`),
            ),
          );
        }
      }
      for (const f of r.free) {
        for (const lone of LONE) {
          cases.push(
            caseOf(
              r,
              'invalid UTF-8 / lone surrogate',
              `${f} key ${lone}`,
              withRaw(r.body(), f, `{"${lone}":1}`),
            ),
          );
          cases.push(
            caseOf(
              r,
              'invalid UTF-8 / lone surrogate',
              `${f} deep ${lone}`,
              withRaw(r.body(), f, `[{"a":[1,"${lone}"]}]`),
            ),
          );
        }
      }
      for (const lone of LONE) {
        cases.push(
          caseOf(
            r,
            'invalid UTF-8 / lone surrogate',
            `unknown key ${lone}`,
            withKey(r.body(), `"k${lone}"`, '1'),
          ),
        );
      }
    }
    // env names and values, tags, server ids
    for (const lone of LONE) {
      cases.push(
        caseOf(
          routes()[2],
          'invalid UTF-8 / lone surrogate',
          `env value ${lone}`,
          withRaw(jobBody(), 'env', `{"A":"${lone}"}`),
        ),
      );
      cases.push(
        caseOf(
          routes()[2],
          'invalid UTF-8 / lone surrogate',
          `env name ${lone}`,
          withRaw(jobBody(), 'env', `{"A${lone}":"x"}`),
        ),
      );
      cases.push(
        caseOf(
          routes()[2],
          'invalid UTF-8 / lone surrogate',
          `tag ${lone}`,
          withRaw(jobBody(), 'targets.tags', `["${lone}"]`),
        ),
      );
      cases.push(
        caseOf(
          routes()[0],
          'invalid UTF-8 / lone surrogate',
          `tag ${lone}`,
          withRaw(serverBody(), 'tags', `["${lone}"]`),
        ),
      );
    }
    // text/plain runtime bodies, and percent-encoded keys that are not UTF-8
    for (const bytes of INVALID_UTF8) {
      for (const [method, p] of [
        ['POST', '/runtime/v1/output'],
        ['PUT', '/runtime/v1/variables/k1'],
        ['POST', '/runtime/v1/condition'],
      ]) {
        cases.push({
          category: 'invalid UTF-8 / lone surrogate',
          name: `text/plain ${bytes.join(',')}`,
          api: 'runtime',
          method,
          path: p,
          body: Buffer.concat([Buffer.from('tr'), Buffer.from(bytes)]),
          contentType: 'text/plain; charset=utf-8',
        });
      }
      const enc = bytes.map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
      cases.push({
        category: 'invalid UTF-8 / lone surrogate',
        name: `runtime key ${enc}`,
        api: 'runtime',
        method: 'PUT',
        path: `/runtime/v1/variables/k${enc}`,
        body: { value: 1 },
      });
      cases.push({
        category: 'invalid UTF-8 / lone surrogate',
        name: `runtime key ${enc}`,
        api: 'runtime',
        method: 'GET',
        path: `/runtime/v1/variables/k${enc}`,
      });
      cases.push({
        category: 'invalid UTF-8 / lone surrogate',
        name: `key ${enc}`,
        api: 'rest',
        method: 'PUT',
        path: `/v1/variables/u1/k${enc}`,
        body: { value: 1 },
      });
      cases.push({
        category: 'invalid UTF-8 / lone surrogate',
        name: `userId ${enc}`,
        api: 'rest',
        method: 'PUT',
        path: `/v1/variables/u${enc}/k`,
        body: { value: 1 },
      });
    }
    expect(await runAll('invalid UTF-8 / lone surrogate', cases)).toEqual([]);
  });

  it('path traversal and NUL in ids, keys, paths and path-like fields', async () => {
    const cases: Case[] = [];
    const rest = (method: string, p: string, body?: Body): Case => ({
      category: 'path traversal',
      name: p,
      api: 'rest',
      method,
      path: p,
      body,
    });
    for (const id of TRAVERSAL_IDS) {
      cases.push(rest('GET', `/v1/servers/${id}`));
      cases.push(rest('PATCH', `/v1/servers/${id}`, { name: 'renamed' }));
      cases.push(rest('DELETE', `/v1/servers/${id}`));
      cases.push(rest('POST', `/v1/servers/${id}/check`));
      cases.push(rest('GET', `/v1/executions/${id}`));
      cases.push(rest('POST', `/v1/executions/${id}/cancel`));
      cases.push(rest('GET', `/v1/executions/${id}/logs`));
      cases.push(rest('GET', `/v1/executions/${holdId}/logs?serverId=${id}`));
      cases.push(rest('GET', `/v1/executions?cursor=${id}`));
      cases.push(rest('GET', `/v1/variables/${id}/k`));
      // '..' is a plain scope name (1-200 of [A-Za-z0-9_.:@-]): only what decodes to more is bad
      if (!/^(\.\.|%2e%2e)$/.test(id))
        cases.push(rest('PUT', `/v1/variables/${id}/k`, { value: 1 }));
      cases.push(rest('DELETE', `/v1/variables/${id}/k`));
      // a key is data, not a path: unset ones are 404, ones holding NUL are 400
      cases.push(rest('GET', `/v1/variables/u1/${id}`));
      cases.push(rest('DELETE', `/v1/variables/u1/${id}`));
      if (id.includes('%00')) cases.push(rest('PUT', `/v1/variables/u1/${id}`, { value: 1 }));
      cases.push({
        category: 'path traversal',
        name: `runtime key ${id}`,
        api: 'runtime',
        method: 'GET',
        path: `/runtime/v1/variables/${id}`,
      });
      if (id.includes('%00')) {
        cases.push({
          category: 'path traversal',
          name: `runtime key ${id}`,
          api: 'runtime',
          method: 'PUT',
          path: `/runtime/v1/variables/${id}`,
          body: { value: 1 },
        });
      }
      cases.push(
        caseOf(
          routes()[2],
          'path traversal',
          `serverIds ${id}`,
          setAt(jobBody(), 'targets.serverIds', [decodeURIComponent(id.replace(/%c0%ae/g, '.'))]),
        ),
      );
      cases.push(
        caseOf(
          routes()[2],
          'path traversal',
          `tags ${id}`,
          setAt(jobBody(), 'targets', { tags: [decodeURIComponent(id.replace(/%c0%ae/g, '.'))] }),
        ),
      );
    }
    for (const baseDir of [
      '../etc',
      '~/../x',
      '/a/../b',
      '/a/./b',
      '~/a\u0000b',
      '/tmp/x\u0000',
      '..',
      '.',
      '~/.',
      '//etc',
      '~root/x',
      '/a/b/',
      'C:\\x',
      '~/a\\..\\b',
    ]) {
      cases.push(
        caseOf(
          routes()[0],
          'path traversal',
          `baseDir ${JSON.stringify(baseDir)}`,
          setAt(serverBody(), 'baseDir', baseDir),
        ),
      );
      cases.push(
        caseOf(routes()[1], 'path traversal', `baseDir ${JSON.stringify(baseDir)}`, { baseDir }),
      );
    }
    for (const p of [
      '/runtime/v1/../../v1/servers',
      '/runtime/v1/%2e%2e/%2e%2e/v1/jobs',
      '/v1/servers',
      '/v1/jobs',
      '/metrics',
      '/health/ready',
      '/docs/json',
      '/runtime/v1/context/..',
      '/runtime/v1/variables/a/b',
      '/runtime/v1/variables/',
      '/runtime/v2/context',
      '/RUNTIME/v1/context',
    ]) {
      cases.push({
        category: 'path traversal',
        name: `runtime ${p}`,
        api: 'runtime',
        method: 'GET',
        path: p,
      });
    }
    cases.push(rest('GET', '/v1/servers/../../metrics'));
    cases.push(rest('GET', '/v1/../v1/servers/%2e%2e'));
    expect(await runAll('path traversal', cases)).toEqual([]);
  });

  it('shell metacharacters and newlines in every string that must not carry them', async () => {
    const cases: Case[] = [];
    const [srv, patch, job] = routes();
    for (const evil of EVIL) {
      for (const f of ['host', 'username', 'baseDir', 'hostKey', 'privateKey', 'jumpServerId']) {
        cases.push(
          caseOf(
            srv,
            'shell metacharacters / newlines',
            `${f} ${JSON.stringify(evil)}`,
            setAt(serverBody(), f, evil),
          ),
        );
        cases.push(
          caseOf(patch, 'shell metacharacters / newlines', `${f} ${JSON.stringify(evil)}`, {
            [f]: evil,
          }),
        );
      }
      cases.push(
        caseOf(
          srv,
          'shell metacharacters / newlines',
          `tag ${JSON.stringify(evil)}`,
          setAt(serverBody(), 'tags', [evil]),
        ),
      );
      cases.push(
        caseOf(
          srv,
          'shell metacharacters / newlines',
          `baseDir ~/${JSON.stringify(evil)}`,
          setAt(serverBody(), 'baseDir', `~/${evil}`),
        ),
      );
      cases.push(
        caseOf(
          srv,
          'shell metacharacters / newlines',
          `host with a suffix`,
          setAt(serverBody(), 'host', `127.0.0.1${evil}`),
        ),
      );
      for (const [f, v] of [
        ['userId', evil],
        ['targets.tags', [evil]],
        ['targets.serverIds', [evil]],
        ['script.type', evil],
        ['script.type', `bash${evil}`],
        ['helperMode', evil],
        ['maxErrors', evil],
        ['env', { [evil]: 'x' }],
        ['env', { [`A${evil}`]: 'x' }],
        ['timeoutSeconds', evil],
        ['concurrency', evil],
        ['failFast', evil],
        ['become', { user: evil, method: 'sudo' }],
        ['become', { user: `root${evil}`, method: 'sudo' }],
        ['become', { method: `sudo${evil}` }],
      ] as [string, unknown][]) {
        cases.push(
          caseOf(
            job,
            'shell metacharacters / newlines',
            `${f} ${JSON.stringify(v)}`,
            setAt(jobBody(), f, v),
          ),
        );
      }
      const q = encodeURIComponent(evil);
      for (const p of [
        `/v1/executions?status=${q}`,
        `/v1/executions?cursor=${q}`,
        `/v1/executions?limit=${q}`,
        `/v1/executions/${holdId}/logs?serverId=${q}`,
        `/v1/executions/${holdId}/logs?format=${q}`,
        `/v1/executions/${holdId}/logs?afterSeq=${q}`,
        `/v1/executions/${q}`,
        `/v1/servers/${q}`,
      ]) {
        cases.push({
          category: 'shell metacharacters / newlines',
          name: p,
          api: 'rest',
          method: 'GET',
          path: p,
        });
      }
      cases.push({
        category: 'shell metacharacters / newlines',
        name: 'check timeout',
        api: 'rest',
        method: 'POST',
        path: `/v1/servers/${serverId}/check?timeoutSeconds=${q}`,
      });
      cases.push({
        category: 'shell metacharacters / newlines',
        name: 'userId in path',
        api: 'rest',
        method: 'PUT',
        path: `/v1/variables/${q}/k`,
        body: { value: 1 },
      });
      if (/[\n\r]/.test(evil)) {
        // names, ids and keys may hold any text but control characters
        cases.push(
          caseOf(
            srv,
            'shell metacharacters / newlines',
            'name with a newline',
            setAt(serverBody(), 'name', evil),
          ),
        );
        cases.push(
          caseOf(patch, 'shell metacharacters / newlines', 'name with a newline', { name: evil }),
        );
        // a sudo password may hold any text but a line break (it is one line on sudo's stdin)
        const pw = { becomePassword: evil };
        cases.push(
          caseOf(srv, 'shell metacharacters / newlines', 'becomePassword', {
            ...serverBody(),
            ...pw,
          }),
        );
        cases.push(caseOf(patch, 'shell metacharacters / newlines', 'becomePassword', pw));
        cases.push({
          category: 'shell metacharacters / newlines',
          name: 'key with a newline',
          api: 'rest',
          method: 'PUT',
          path: `/v1/variables/u1/${q}`,
          body: { value: 1 },
        });
        cases.push({
          category: 'shell metacharacters / newlines',
          name: 'runtime key with a newline',
          api: 'runtime',
          method: 'PUT',
          path: `/runtime/v1/variables/${q}`,
          body: { value: 1 },
        });
      }
      if (evil.includes(' ')) {
        cases.push({
          category: 'shell metacharacters / newlines',
          name: 'Idempotency-Key',
          api: 'rest',
          method: 'POST',
          path: '/v1/jobs',
          body: jobBody(),
          headers: { 'Idempotency-Key': evil.replace(/[\r\n]/g, ' ') },
        });
      }
      cases.push({
        category: 'shell metacharacters / newlines',
        name: 'text condition',
        api: 'runtime',
        method: 'POST',
        path: '/runtime/v1/condition',
        body: `true${evil}`,
        contentType: 'text/plain',
      });
      cases.push({
        category: 'shell metacharacters / newlines',
        name: 'json condition',
        api: 'runtime',
        method: 'POST',
        path: '/runtime/v1/condition',
        body: { condition: evil },
      });
      cases.push({
        category: 'shell metacharacters / newlines',
        name: 'tool',
        api: 'runtime',
        method: 'POST',
        path: '/runtime/v1/tool-actions',
        body: { tool: evil, action: 'a', params: {} },
      });
    }
    expect(await runAll('shell metacharacters / newlines', cases)).toEqual([]);
  });

  it('rolling batches: each field of `batch` wrong, absurd, missing, unknown or hostile', async () => {
    const job = routes()[2];
    const batch = (raw: string) => withRaw(jobBody(), 'batch', raw);
    const cases: Case[] = [];
    for (const v of ['"x"', '1', '[]', 'true', '[{"size":1}]'])
      cases.push(caseOf(job, 'wrong type', `batch=${v}`, batch(v)));
    const fields: [string, string[]][] = [
      ['size', ['0', '10001', '"0%"', '"101%"', '"1.5%"', '"10 %"', '"%"', '"05%"', 'null', '{}']],
      ['maxFailPercentage', ['101', 'true', '"50"', '"50%"', '{}']],
      ['pauseSeconds', ['3601', 'true', '"1"', '{}']],
    ];
    for (const [f, bad] of fields) {
      const rest = f === 'size' ? '' : ',"size":1';
      for (const n of [...NUMBERS, ...bad])
        cases.push(caseOf(job, 'absurd numbers', `batch.${f} ${n}`, batch(`{"${f}":${n}${rest}}`)));
    }
    cases.push(caseOf(job, 'missing field', 'no batch.size', batch('{"pauseSeconds":1}')));
    for (const n of ['surprise', 'constructor', '__proto__', 'toString', 'batch'])
      cases.push(caseOf(job, 'unknown field', `batch.${n}`, batch(`{"size":1,"${n}":1}`)));
    for (const v of EVIL)
      cases.push(
        caseOf(
          job,
          'shell metacharacters / newlines',
          `batch.size ${v}`,
          batch(JSON.stringify({ size: v })),
        ),
      );
    const failures = [];
    for (const c of CATEGORIES)
      failures.push(
        ...(await runAll(
          c,
          cases.filter((x) => x.category === c),
        )),
      );
    expect(failures).toEqual([]);
  });

  it('absurd numbers in every numeric field and query integer', async () => {
    const cases: Case[] = [];
    const [srv, patch, job] = routes();
    for (const n of NUMBERS) {
      cases.push(caseOf(srv, 'absurd numbers', `port ${n}`, withRaw(serverBody(), 'port', n)));
      cases.push(caseOf(patch, 'absurd numbers', `port ${n}`, `{"port":${n}}`));
      for (const f of ['timeoutSeconds', 'concurrency', 'maxErrors']) {
        if (f === 'maxErrors' && n === '"1"') continue; // not a number: a wrong type, covered there
        cases.push(caseOf(job, 'absurd numbers', `${f} ${n}`, withRaw(jobBody(), f, n)));
      }
      cases.push(caseOf(job, 'absurd numbers', `failFast ${n}`, withRaw(jobBody(), 'failFast', n)));
      cases.push({
        category: 'absurd numbers',
        name: `condition ${n}`,
        api: 'runtime',
        method: 'POST',
        path: '/runtime/v1/condition',
        body: `{"condition":${n}}`,
      });
    }
    for (const pct of [
      '"1e2%"',
      '"0x10%"',
      '"-0%"',
      '"100.0%"',
      '"1000%"',
      '"%"',
      '"50%%"',
      '"5O%"',
    ]) {
      cases.push(
        caseOf(job, 'absurd numbers', `maxErrors ${pct}`, withRaw(jobBody(), 'maxErrors', pct)),
      );
    }
    for (const n of ['0', '65536', '-22', '99999999999999999999']) {
      cases.push(caseOf(srv, 'absurd numbers', `port ${n}`, withRaw(serverBody(), 'port', n)));
    }
    for (const n of ['0', '-0']) {
      cases.push(
        caseOf(
          job,
          'absurd numbers',
          `timeoutSeconds ${n}`,
          withRaw(jobBody(), 'timeoutSeconds', n),
        ),
      );
      cases.push(
        caseOf(job, 'absurd numbers', `concurrency ${n}`, withRaw(jobBody(), 'concurrency', n)),
      );
    }
    for (const n of QUERY_NUMBERS) {
      for (const p of [
        `/v1/executions?limit=${n}`,
        `/v1/executions/${holdId}/logs?limit=${n}`,
        `/v1/executions/${holdId}/logs?afterSeq=${n}`,
      ]) {
        if (n === '-0' && p.includes('afterSeq')) continue; // "-0" is refused by the plain-decimal rule too
        cases.push({ category: 'absurd numbers', name: p, api: 'rest', method: 'GET', path: p });
      }
      cases.push({
        category: 'absurd numbers',
        name: `check ${n}`,
        api: 'rest',
        method: 'POST',
        path: `/v1/servers/${serverId}/check?timeoutSeconds=${n}`,
      });
    }
    for (const p of [
      '/v1/executions?limit=0',
      `/v1/executions/${holdId}/logs?limit=0`,
      `/v1/servers/${serverId}/check?timeoutSeconds=0`,
      '/v1/executions?limit=1&limit=2',
      `/v1/executions/${holdId}/logs?afterSeq=1&afterSeq=2`,
    ]) {
      cases.push({
        category: 'absurd numbers',
        name: p,
        api: 'rest',
        method: p.includes('check') ? 'POST' : 'GET',
        path: p,
      });
    }
    expect(await runAll('absurd numbers', cases)).toEqual([]);
  });

  // Issue 12 (find and rerun): the filters of GET /v1/executions and GET /v1/servers, the
  // rerun body, and unknown query parameters on every /v1 route. Kept in one block.
  it('find filters, the rerun body and unknown query parameters, in every category', async () => {
    const job = await t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .send({ script: { type: 'bash', content: 'exit 1' }, targets: { serverIds: [serverId] } });
    const ended = (await waitForExecution(t, job.body.id)).id as string;
    const rerun = `/v1/executions/${ended}/rerun`;
    const q = (category: Category, p: string, method = 'GET'): Case => ({
      category,
      name: `${method} ${p.slice(0, 120)}`,
      api: 'rest',
      method,
      path: p,
    });
    const body = (category: Category, b: Body, extra: Partial<Case> = {}): Case => ({
      category,
      name: `rerun ${typeof b === 'string' ? b : JSON.stringify(b)}`.slice(0, 120),
      api: 'rest',
      method: 'POST',
      path: rerun,
      body: b,
      ...extra,
    });
    const ex = (query: string) => `/v1/executions?${query}`;
    const sv = (query: string) => `/v1/servers?${query}`;
    const evil = encodeURIComponent(EVIL[0]);
    const cases: Case[] = [
      // wrong types and values
      ...['bogus', 'failed,bogus', '', 'failed,', 'FAILED', 'failed&status=']
        .map((v) => ex(`status=${v}`))
        .concat(['serverId=x', `serverId=${serverId}&serverId=${serverId}`].map(ex))
        .concat(['jobId=', 'jobId=a&jobId=b', 'userId=', 'eventId=a&eventId=b'].map(ex))
        .concat(['name=', 'name=a&name=b'].map(ex))
        .concat(
          [
            'yesterday',
            '2026-01-01',
            '2026-01-01T00:00:00',
            '1700000000000',
            '2026-02-30T00:00:00Z',
            '2026-01-01T00:00Z',
          ].flatMap((v) => [ex(`createdAfter=${v}`), ex(`createdBefore=${v}`)]),
        )
        .concat([ex('createdAfter=2026-01-02T00:00:00Z&createdBefore=2026-01-01T00:00:00Z')])
        .concat(['tag=', 'tag=a,,b', 'tag=a%20b', 'tag=a&tag=', 'name=', 'name=a&name=b'].map(sv))
        .concat(['cursor=x', `cursor=${'W1swLCJ4Il1d'}`, 'limit=0', 'limit=x'].map(sv))
        .map((p) => q('wrong type', p)),
      ...['{"only":1}', '{"only":null}', '{"only":"FAILED"}', '{"only":"failed "}']
        .concat(['{"only":[]}', '{"only":{}}', '{"only":""}', '{"only":"some"}'])
        .concat(WRONG.nullableBool.map((v) => `{"only":"failed","includeSkipped":${v}}`))
        .concat(['[]', '"failed"', 'null', '1'])
        .map((b) => body('wrong type', b)),
      // missing and unknown fields; unknown query parameters on every /v1 route
      body('missing field', {}),
      body('missing field', { includeSkipped: true }),
      ...['surprise', 'constructor', '__proto__', 'toString', 'rerunOf', 'targets'].map((n) =>
        body('unknown field', withKey({ only: 'failed' }, JSON.stringify(n), '1')),
      ),
      ...(
        [
          ['GET', '/v1/servers'],
          ['POST', '/v1/servers'],
          ['GET', `/v1/servers/${patchId}`],
          ['PATCH', `/v1/servers/${patchId}`],
          ['DELETE', `/v1/servers/${patchId}`],
          ['POST', `/v1/servers/${serverId}/check`],
          ['POST', '/v1/jobs'],
          ['GET', '/v1/executions'],
          ['GET', `/v1/executions/${holdId}`],
          ['GET', `/v1/executions/${holdId}/logs`],
          ['POST', `/v1/executions/${holdId}/cancel`],
          ['GET', `/v1/executions/${holdId}/notifications`],
          ['POST', rerun],
          ['GET', '/v1/variables/bad-table/k1'],
          ['PUT', '/v1/variables/bad-table/k1'],
          ['DELETE', '/v1/variables/bad-table/k1'],
        ] as const
      ).flatMap(([method, p]) =>
        ['surprise=1', 'constructor=1', '__proto__=1', 'tags=x', 'status[]=failed'].map((x) =>
          q('unknown field', `${p}?${x}`, method),
        ),
      ),
      // sizes
      ...[
        ex(`jobId=${'j'.repeat(201)}`),
        ex(`userId=${'u'.repeat(201)}`),
        ex(`eventId=${'e'.repeat(201)}`),
        ex(`name=${'n'.repeat(201)}`),
        ex(`status=${Array(13).fill('failed').join(',')}`),
        sv(`name=${'n'.repeat(201)}`),
        sv(`tag=${'t'.repeat(65)}`),
        sv(`tag=${Array.from({ length: 51 }, (_, i) => `t${i}`).join(',')}`),
        sv('limit=501'),
        sv(`cursor=${'A'.repeat(100 * 1024)}`),
      ].map((p) => q('size limit', p)),
      // bytes that are not UTF-8, and NUL, in every free-text filter
      ...['jobId', 'userId', 'eventId', 'name'].flatMap((f) =>
        ['%FF', 'a%C3%28', '%ED%A0%80', '%C0%AF', 'a%00b'].map((v) =>
          q('invalid UTF-8 / lone surrogate', ex(`${f}=${v}`)),
        ),
      ),
      ...['%FF', '%ED%A0%80', 'a%00b'].map((v) =>
        q('invalid UTF-8 / lone surrogate', sv(`name=${v}`)),
      ),
      // ids in the path
      ...TRAVERSAL_IDS.map((id) =>
        body('path traversal', { only: 'all' }, { path: `/v1/executions/${id}/rerun` }),
      ),
      // shell metacharacters where only a fixed vocabulary goes
      ...['status', 'serverId', 'createdAfter', 'createdBefore']
        .map((f) => ex(`${f}=${evil}`))
        .concat([sv(`tag=${evil}`), sv(`cursor=${evil}`), sv(`limit=${evil}`)])
        .map((p) => q('shell metacharacters / newlines', p)),
      body('shell metacharacters / newlines', { only: EVIL[0] }),
      body(
        'shell metacharacters / newlines',
        { only: 'all' },
        { headers: { 'Idempotency-Key': EVIL[2] } },
      ),
      // numbers where a page size goes
      ...QUERY_NUMBERS.map((n) => q('absurd numbers', sv(`limit=${n}`))),
    ];
    const byCategory = new Map<Category, Case[]>();
    for (const c of cases) byCategory.set(c.category, [...(byCategory.get(c.category) ?? []), c]);
    const failures: string[] = [];
    for (const [category, list] of byCategory) failures.push(...(await runAll(category, list)));
    expect(failures).toEqual([]);
  });

  it('notify: bad URL, not allow-listed, non-http scheme, secret too long, unknown fields', async () => {
    const job = routes()[2];
    const url = 'http://127.0.0.1:9/hook';
    const notify = (n: unknown) => setAt(jobBody(), 'notify', n);
    const byCategory: Partial<Record<Category, [string, Body][]>> = {
      'wrong type': [
        ...['"x"', '1', '[]', 'true'].map((v): [string, Body] => [
          `notify=${v}`,
          withRaw(jobBody(), 'notify', v),
        ]),
        ...['1', 'null', '[]', '{}', 'true'].map((v): [string, Body] => [
          `notify.url=${v}`,
          withRaw(notify({ url }), 'notify.url', v),
        ]),
        ...['1', 'null', '[]', '{}', 'true'].map((v): [string, Body] => [
          `notify.secret=${v}`,
          withRaw(notify({ url, secret: 's' }), 'notify.secret', v),
        ]),
        ...[
          'not a url',
          '//127.0.0.1:9/hook',
          'ftp://127.0.0.1:9/hook',
          'file:///etc/passwd',
          'javascript:alert(1)',
          'http://127.0.0.1:10/hook',
          'http://localhost:9/hook',
          'http://127.0.0.1.evil.example:9/hook',
          'http://user:pw@127.0.0.1:9/hook',
        ].map((u): [string, Body] => [`notify.url ${u}`, notify({ url: u })]),
      ],
      'missing field': [
        ['notify {}', notify({})],
        ['notify without url', notify({ secret: 's' })],
      ],
      'unknown field': ['surprise', 'constructor', '__proto__', 'headers'].map(
        (n): [string, Body] => [
          `notify.${n}`,
          JSON.stringify(notify({ url })).replace(
            '"notify":{',
            `"notify":{${JSON.stringify(n)}:1,`,
          ),
        ],
      ),
      'size limit': [
        ['url 2049', notify({ url: `${url}/${'x'.repeat(2049 - url.length - 1)}` })],
        ['url empty', notify({ url: '' })],
        ['secret 257', notify({ url, secret: 's'.repeat(257) })],
        ['secret empty', notify({ url, secret: '' })],
      ],
      'shell metacharacters / newlines': EVIL.flatMap((e): [string, Body][] => [
        [`notify.url ${e}`, notify({ url: e })],
        [`notify.url host ${e}`, notify({ url: `http://${e}/hook` })],
      ]),
    };
    for (const [category, cases] of Object.entries(byCategory) as [Category, [string, Body][]][]) {
      const all = cases.map(([name, body]) => caseOf(job, category, name, body));
      expect(await runAll(category, all)).toEqual([]);
    }
  });

  it('jump hosts: unknown, own, cyclic, too deep or malformed jumpServerId; deleting a jump in use', async () => {
    // c[0] ← c[1] ← c[2] ← c[3]: c[3] is 3 hops deep, the default ssh.maxJumpDepth.
    const c: string[] = [];
    for (let i = 0; i < 4; i++) {
      c.push(await registerServer(t, sshd, { name: `chain-${i}`, jumpServerId: c[i - 1] }));
    }
    const [srv] = routes();
    const on = (id: string, name: string, body?: Body, method = 'PATCH'): Case => {
      return {
        category: 'bad references',
        name,
        api: 'rest',
        method,
        path: `/v1/servers/${id}`,
        body,
      };
    };
    const unknown = '00000000-0000-4000-8000-000000000000';
    const cases: Case[] = [
      ...[unknown, unknown.toUpperCase(), 'not-a-uuid', '../' + c[0], `${c[0]} `].map((j) =>
        caseOf(srv, 'bad references', `jumpServerId ${j}`, setAt(serverBody(), 'jumpServerId', j)),
      ),
      caseOf(
        srv,
        'bad references',
        'behind the deepest',
        setAt(serverBody(), 'jumpServerId', c[3]),
      ),
      on(c[0], 'own jump', { jumpServerId: c[0] }),
      on(c[0], 'cycle', { jumpServerId: c[3] }),
      on(c[0], 'chain over the depth', { jumpServerId: patchId }),
      on(c[1], 'unknown', { jumpServerId: unknown }),
      on(c[2], 'delete a jump in use', undefined, 'DELETE'),
    ];
    expect(await runAll('bad references', cases)).toEqual([]);
    const views = await Promise.all(c.map((id) => t.http().get(`/v1/servers/${id}`).set(t.auth)));
    expect(views.map((v) => v.body.jumpServerId)).toEqual([null, c[0], c[1], c[2]]);
    for (const id of c.reverse()) {
      expect((await t.http().delete(`/v1/servers/${id}`).set(t.auth)).status).toBe(204);
    }
  });
});
