/**
 * Property-based tests (fast-check) against the real service, sshd and SQLite:
 * - env values, input, variable keys and values round-trip byte for byte through a job,
 *   in bash, python and node, in API and bundled helper mode;
 * - any JSON body POSTed/PUT to each JSON route either validates or is a 4xx with the
 *   shared error body: never a 5xx, never a hang.
 */
import fc from 'fast-check';
import * as fs from 'node:fs';
import { STATUS_CODES } from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { loneSurrogateAt } from '../src/common/json-depth';
import { autoValue, rawRender, validKey } from '../src/runtime-helpers/variables.service';
import {
  holdApiTarget,
  logsOf,
  registerServer,
  startApp,
  TestApp,
  waitForExecution,
} from './support/app';
import { rawRequest } from './support/raw-http';
import { freePort, SshdInstance, startSshd } from './support/sshd';

const RUNS = Number(process.env.CRONIUM_PROPERTY_RUNS ?? 15);
const FUZZ_RUNS = Number(process.env.CRONIUM_FUZZ_RUNS ?? 150);

const NASTY = [
  '',
  ' ',
  '\n',
  'a\n',
  '\n\n',
  '\r\n',
  '\t',
  "'",
  "'\\''",
  '"',
  '\\',
  '\\n',
  '$(touch /tmp/cronium-never)',
  '`id`',
  '${HOME}',
  '$HOME',
  '%s%n',
  '%2e%2e',
  '../..',
  '-e',
  '--',
  '=',
  'a=b',
  '\u007f',
  '\u0085',
  '\u00a0',
  '\ufeff',
  '\u2028\u2029',
  '\ufffd',
  '😀',
  'e\u0301',
  '🏳️‍🌈',
  'null',
  'true',
  '123',
  '1.0',
  '1e400',
  '"quoted"',
  ' "padded" ',
  '{"a":1}',
  '[1,2',
  '"\\u0041"',
  '\u0001\u001f',
  '__proto__',
];
const SPECIAL_KEYS = ['__proto__', 'constructor', 'toString', 'valueOf', 'hasOwnProperty', ''];
const noLone = (s: string) => loneSurrogateAt(s) === null;
/** Strings of every kind: any code point, graphemes, ASCII, and hand-picked trouble. */
const anyString = (max = 40) =>
  fc
    .oneof(
      fc.string({ unit: 'binary', maxLength: max }),
      fc.string({ unit: 'grapheme', maxLength: max }),
      fc.string({ unit: 'binary-ascii', maxLength: max }),
      fc.constantFrom(...NASTY),
      fc.array(fc.constantFrom(...NASTY), { maxLength: 4 }).map((a) => a.join('')),
    )
    .filter(noLone);
/** Any JSON value, including objects keyed like Object.prototype members. */
const anyJson: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(null, true, false, 0, -1, 1.5, 1e300, -1e-300, 2 ** 53 + 2, 5e-324),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.integer(),
    anyString(),
    fc.array(tie('v'), { maxLength: 4 }),
    fc
      .array(fc.tuple(fc.oneof(fc.constantFrom(...SPECIAL_KEYS), anyString(12)), tie('v')), {
        maxLength: 4,
      })
      .map((entries) =>
        // built from JSON text, so "__proto__" is an own key as a parsed body has it
        JSON.parse(
          `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`,
        ),
      ),
  ),
})).v;
const varKey = fc
  .oneof(
    anyString(30),
    fc.constantFrom(
      '__proto__',
      'constructor',
      'toString',
      '..',
      '../x',
      '%2e%2e',
      'a/b',
      'k e\'y "q" $(x)',
      '😀',
    ),
  )
  .filter((k) => validKey(k) && noLone(k));
/** Canonical JSON text (what a JSON store gives back, -0 as 0). */
const canon = (v: unknown) => JSON.stringify(JSON.parse(JSON.stringify(v)));
const hex = (s: string) => Buffer.from(s, 'utf8').toString('hex');
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v), 'utf8').toString('base64');

interface Sample {
  env: string[];
  input: unknown;
  vars: [string, unknown][];
}

/** The script for one sample: prints `env <i> <hex>`, `input <hex>`, `var <i> <hex>` lines. */
function scriptFor(lang: string, s: Sample): string {
  if (lang === 'python') {
    return `
import base64, json, os
KV = json.loads(base64.b64decode("${b64(s.vars)}").decode("utf-8"))
for i in range(${s.env.length}):
    print("env", i, os.environb[("FC_%d" % i).encode()].hex())
inp = cronium.input()
print("input", json.dumps(inp, ensure_ascii=False).encode("utf-8").hex())
for i, (k, v) in enumerate(KV):
    cronium.setVariable(k, v)
    print("var", i, json.dumps(cronium.getVariable(k), ensure_ascii=False).encode("utf-8").hex())
cronium.output(inp)
`;
  }
  if (lang === 'node') {
    return `
(async () => {
  const KV = JSON.parse(Buffer.from("${b64(s.vars)}", "base64").toString("utf8"));
  const hex = (t) => Buffer.from(t, "utf8").toString("hex");
  for (let i = 0; i < ${s.env.length}; i++) console.log("env", i, hex(process.env["FC_" + i]));
  const inp = await cronium.input();
  console.log("input", hex(JSON.stringify(inp)));
  for (const [i, [k, v]] of KV.entries()) {
    await cronium.setVariable(k, v);
    console.log("var", i, hex(JSON.stringify(await cronium.getVariable(k))));
  }
  await cronium.output(inp);
})().catch((e) => { console.error(e); process.exit(1); });
`;
  }
  // bash: values are strings; the helpers print them raw
  const vars = s.vars.map(([k, v], i) => {
    const kk = Buffer.from(k).toString('base64');
    const vv = Buffer.from(String(v)).toString('base64');
    return [
      `k=$(printf %s '${kk}' | base64 -d; printf x); k=\${k%x}`,
      `v=$(printf %s '${vv}' | base64 -d; printf x); v=\${v%x}`,
      'cronium.setVariable "$k" "$v"',
      `printf 'var ${i} '; cronium.getVariable "$k" | od -An -v -tx1 | tr -d ' \\n'; echo`,
    ].join('\n');
  });
  return [
    'set -e',
    'set -o pipefail',
    ...s.env.map(
      (_, i) => `printf 'env ${i} '; printf %s "$FC_${i}" | od -An -v -tx1 | tr -d ' \\n'; echo`,
    ),
    `printf 'input '; cronium.input | od -An -v -tx1 | tr -d ' \\n'; echo`,
    ...vars,
  ].join('\n');
}

describe('property-based', () => {
  let sshd: SshdInstance;
  let t: TestApp;
  let serverId: string;
  let patchId: string;
  let runtimePort: number;
  let token: string;
  let holdId: string;
  let tmp: string;

  beforeAll(async () => {
    sshd = await startSshd();
    runtimePort = await freePort();
    t = await startApp({
      CRONIUM__RUNTIME__LOOPBACK_PORT: String(runtimePort),
      CRONIUM__RUNTIME__BURST: '100000',
      CRONIUM__RUNTIME__RATE_PER_SECOND: '100000',
    });
    serverId = await registerServer(t, sshd, { baseDir: `${sshd.dir}/base` });
    patchId = await registerServer(t, sshd, { name: 'fuzz-patch', baseDir: `${sshd.dir}/base` });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-prop-'));
  });
  afterAll(async () => {
    if (holdId) await t.http().post(`/v1/executions/${holdId}/cancel`).set(t.auth);
    if (holdId) await waitForExecution(t, holdId).catch(() => undefined);
    await t?.close();
    await sshd?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  describe('values round-trip byte for byte through a job', () => {
    const cases = ['api', 'bundled'].flatMap((mode) =>
      ['bash', 'python', 'node'].map((lang) => [lang, mode]),
    );
    let run = 0;

    it.each(cases)('%s in %s mode', async (lang, mode) => {
      const bash = lang === 'bash';
      const value = bash ? anyString(60) : anyJson;
      const sample: fc.Arbitrary<Sample> = fc.record({
        env: fc.array(
          anyString(80).filter((v) => !v.includes('\0')),
          { minLength: 1, maxLength: 6 },
        ),
        input: anyJson,
        // bash cannot hold NUL in an argument
        vars: fc.uniqueArray(
          fc.tuple(
            varKey,
            bash ? (value as fc.Arbitrary<string>).filter((v) => !v.includes('\0')) : value,
          ),
          { minLength: 1, maxLength: 4, selector: ([k]) => k },
        ),
      });
      await fc.assert(
        fc.asyncProperty(sample, async (s) => {
          const userId = `rt-${lang}-${mode}-${++run}`;
          const res = await t
            .http()
            .post('/v1/jobs')
            .set(t.auth)
            .send({
              helperMode: mode,
              userId,
              input: s.input,
              env: Object.fromEntries(s.env.map((v, i) => [`FC_${i}`, v])),
              script: { type: lang, content: scriptFor(lang, s) },
              targets: { serverIds: [serverId] },
            });
          expect(res.status).toBe(202);
          const ex = await waitForExecution(t, res.body.id);
          const logs = await logsOf(t, ex.id);
          const stderr = logs.filter((l) => l.stream === 'stderr').map((l) => l.text);
          expect({ status: ex.status, stderr }).toEqual({ status: 'succeeded', stderr: [] });
          const printed = new Map<string, string>();
          for (const l of logs.filter((x) => x.stream === 'stdout')) {
            const parts = l.text.split(' ');
            printed.set(parts.slice(0, -1).join(' '), parts[parts.length - 1]);
          }
          const text = (k: string) => Buffer.from(printed.get(k) ?? 'ff', 'hex').toString('utf8');
          s.env.forEach((v, i) =>
            expect([`env ${i}`, printed.get(`env ${i}`)]).toEqual([`env ${i}`, hex(v)]),
          );
          if (bash) {
            // bash prints a string input raw, anything else as JSON; it cannot hold NUL
            expect(printed.get('input') ?? '').toBe(hex(rawRender(s.input).replace(/\0/g, '')));
          } else {
            expect(canon(JSON.parse(text('input')))).toBe(canon(s.input));
            expect(canon(ex.targets[0].output)).toBe(canon(s.input));
          }
          for (const [i, [k, v]] of s.vars.entries()) {
            // bash stores a value as JSON when it parses as JSON, else as the string
            const stored = bash ? autoValue(v as string) : v;
            if (bash) {
              const shown =
                mode === 'api' || typeof stored === 'string' ? rawRender(stored) : (v as string);
              expect([k, printed.get(`var ${i}`) ?? '']).toEqual([
                k,
                hex(shown.replace(/\0/g, '')),
              ]);
            } else {
              expect([k, canon(JSON.parse(text(`var ${i}`)))]).toEqual([k, canon(v)]);
            }
            const got = await t
              .http()
              .get(`/v1/variables/${userId}/${encodeURIComponent(k)}`)
              .set(t.auth);
            expect([k, got.status, canon(got.body.value)]).toEqual([k, 200, canon(stored)]);
          }
        }),
        {
          numRuns: RUNS,
          endOnFailure: true,
          // found by this property once: keys that URL parsing resolves as dot segments, and
          // objects under keys such as toString or __proto__ (TypeORM's save() dropped them)
          examples: [
            [
              {
                env: ['$(x)\n'],
                input: JSON.parse('{"toString":{"a":1},"__proto__":{"b":2},"constructor":[1]}'),
                vars: [
                  [
                    '..',
                    bash
                      ? '{"toString":{"a":1}}'
                      : JSON.parse('{"toString":{"a":1},"__proto__":{"b":[2]}}'),
                  ],
                  ['.', bash ? 'v' : 1],
                  ['%2e%2e', 'x'],
                ],
              },
            ],
            // found once in CI: a string input holding U+0000 (bash's raw read of it failed)
            [{ env: ['x'], input: '\u0000a\u0000', vars: [['k', 'v']] }],
          ],
        },
      );
    });
  });

  describe('any JSON body either validates or is a 4xx, never a 5xx or a hang', () => {
    beforeAll(async () => {
      ({ id: holdId, token } = await holdApiTarget(t, serverId, tmp));
    });

    const bases: [
      string,
      'rest' | 'runtime',
      string,
      () => string,
      () => Record<string, unknown>,
    ][] = [
      [
        'POST',
        'rest',
        'servers',
        () => '/v1/servers',
        () => ({ name: `f-${Math.random()}`, host: '127.0.0.1', username: 'root', password: 'pw' }),
      ],
      ['PATCH', 'rest', 'server', () => `/v1/servers/${patchId}`, () => ({})],
      [
        'POST',
        'rest',
        'jobs',
        () => '/v1/jobs',
        () => ({ script: { type: 'bash', content: 'true' }, targets: { serverIds: [serverId] } }),
      ],
      ['PUT', 'rest', 'variable', () => '/v1/variables/fuzz/k', () => ({ value: 1 })],
      ['POST', 'runtime', 'output', () => '/runtime/v1/output', () => ({ data: 1 })],
      ['POST', 'runtime', 'condition', () => '/runtime/v1/condition', () => ({ condition: true })],
      ['PUT', 'runtime', 'variable', () => '/runtime/v1/variables/k', () => ({ value: 1 })],
      [
        'POST',
        'runtime',
        'tool-actions',
        () => '/runtime/v1/tool-actions',
        () => ({ tool: 't', action: 'a', params: {} }),
      ],
    ];
    const fieldNames = fc.constantFrom(
      'name',
      'host',
      'port',
      'username',
      'password',
      'privateKey',
      'passphrase',
      'hostKey',
      'tags',
      'baseDir',
      'script',
      'targets',
      'env',
      'input',
      'timeoutSeconds',
      'helperMode',
      'concurrency',
      'maxErrors',
      'failFast',
      'userId',
      'jobId',
      'eventId',
      'value',
      'data',
      'condition',
      'tool',
      'action',
      'params',
      ...SPECIAL_KEYS,
    );
    const nestedText = fc
      .tuple(fc.integer({ min: 1, max: 3000 }), fc.constantFrom('[', '{"a":'))
      .map(
        ([n, open]) =>
          open.repeat(n) + (open === '[' ? '' : '1') + (open === '[' ? ']' : '}').repeat(n),
      );

    it.each(bases.map((b) => [`${b[0]} ${b[1]} ${b[2]}`, b] as const))('%s', async (_n, b) => {
      const [method, api, , url, base] = b;
      const body = fc.oneof(
        anyJson.map((v) => JSON.stringify(v)),
        fc.array(fc.tuple(fieldNames, anyJson), { maxLength: 4 }).map((over) => {
          const text = JSON.stringify(base());
          const extra = over.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',');
          return extra ? (text === '{}' ? `{${extra}}` : `{${extra},${text.slice(1)}`) : text;
        }),
        fc.tuple(fieldNames, nestedText).map(([k, v]) => `{${JSON.stringify(k)}:${v}}`),
        nestedText,
      );
      let statuses: Record<number, number> = {};
      await fc.assert(
        fc.asyncProperty(body, async (text) => {
          const r = await rawRequest(
            api === 'rest' ? Number(new URL(t.url).port) : runtimePort,
            method,
            url(),
            {
              headers: {
                Authorization: api === 'rest' ? t.auth.Authorization : `Bearer ${token}`,
                'Content-Type': 'application/json',
              },
              body: text,
              timeoutMs: 10000,
            },
          );
          statuses[r.status] = (statuses[r.status] ?? 0) + 1;
          expect([text.slice(0, 300), r.status < 500]).toEqual([text.slice(0, 300), true]);
          if (r.status >= 400) {
            expect(r.body).toEqual({
              statusCode: r.status,
              error: STATUS_CODES[r.status],
              message: expect.any(String),
            });
          }
        }),
        { numRuns: FUZZ_RUNS, endOnFailure: true },
      );
      console.log(
        `fuzz ${method} ${url()}: ${FUZZ_RUNS} bodies, statuses ${JSON.stringify(statuses)}`,
      );
      statuses = {};
    });
  });
});
