/**
 * The runtime helpers (remote/helpers/, contract docs/runtime-helpers.md) in bundled
 * mode: real bash, python3 and node run locally (no ssh) in a work dir prepared the way
 * the service prepares it (context.json, input.json, variables.json, variables.sh) and
 * with the environment the runner gives them.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ScriptType as Lang } from '../executions/request';
import { bundledFiles, readBundledResults } from '../runtime-helpers/bundled-files';

const SRC_HELPERS = path.resolve(__dirname, 'remote', 'helpers');
const TOOL_ERROR = 'toolAction needs API mode (helperMode bundled has no network)';

jest.setTimeout(60000);

let tmp: string;
let helpers: string; // a copy: python must not write __pycache__ into the sources
let pwned: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-helpers-'));
  helpers = path.join(tmp, 'helpers');
  fs.cpSync(SRC_HELPERS, helpers, { recursive: true });
  pwned = path.join(tmp, 'pwned');
});

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------- the service's side

/** `'x'` with every `'` written as `'\''` (docs: Bundled mode, variables.sh format). */
const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
/** What bash prints for a value: a string raw, anything else as JSON. */
const raw = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

/** The documented variables.sh format (the note at the end of "Bundled mode"). */
function variablesSh(vars: Record<string, unknown>, input: unknown): string {
  const entries = Object.entries(vars).map(([k, v]) => `[${sq(k)}]=${sq(raw(v))}`);
  return `CRONIUM_INPUT_RAW=${sq(raw(input))}\ndeclare -gA CRONIUM_VARS=(${entries.join(' ')})\n`;
}

const CONTEXT = {
  executionId: 'exec-1',
  jobId: 'job-1',
  eventId: null,
  userId: 'user-1',
  serverId: 'srv-1',
  serverName: 'web 1',
  helperMode: 'bundled',
};

let wdCount = 0;
/** A fresh run dir with the snapshot files. */
function workDir(vars: Record<string, unknown> = {}, input: unknown = null): string {
  const wd = path.join(tmp, `run-${++wdCount}`);
  fs.mkdirSync(wd, { mode: 0o700 });
  fs.writeFileSync(path.join(wd, 'context.json'), JSON.stringify(CONTEXT));
  fs.writeFileSync(path.join(wd, 'input.json'), JSON.stringify(input));
  fs.writeFileSync(path.join(wd, 'variables.json'), JSON.stringify(vars));
  fs.writeFileSync(path.join(wd, 'variables.sh'), variablesSh(vars, input));
  return wd;
}

interface Result {
  code: number | null;
  stdout: Buffer;
  out: string;
  err: string;
}

/** The environment and command line runner.sh would use (see its script-start section). */
function command(lang: Lang, wd: string, extraEnv: Record<string, string> = {}) {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/',
    LANG: 'C.UTF-8',
    SHLVL: '1', // else bash, its stdin a socket (node's pipes), would read ~/.bashrc
    CRONIUM_HELPER_MODE: 'bundled',
    CRONIUM_WORK_DIR: wd,
    CRONIUM_EXECUTION_ID: 'exec-1',
    CRONIUM_JOB_ID: 'job-1',
    CRONIUM_SERVER_ID: 'srv-1',
    PYTHONDONTWRITEBYTECODE: '1',
    ...extraEnv,
  };
  const script = path.join(wd, 'script');
  if (lang === 'bash') {
    env.BASH_ENV = path.join(helpers, 'bash-env.sh'); // the stub the runner sets: loads cronium.sh on first use
    return { cmd: 'bash', args: [script], env };
  }
  if (lang === 'python') {
    env.PYTHONPATH = helpers;
    return { cmd: 'python3', args: [script], env };
  }
  env.NODE_PATH = helpers;
  return { cmd: 'node', args: ['-r', path.join(helpers, 'cronium.js'), script], env };
}

function run(lang: Lang, wd: string, script: string, stdin = '', extraEnv = {}): Result {
  fs.writeFileSync(path.join(wd, 'script'), script);
  const { cmd, args, env } = command(lang, wd, extraEnv);
  const r = spawnSync(cmd, args, { cwd: wd, env, input: stdin });
  return {
    code: r.status,
    stdout: r.stdout,
    out: r.stdout.toString('utf8'),
    err: r.stderr.toString('utf8'),
  };
}

function runAsync(lang: Lang, wd: string, scriptName: string): Promise<Result> {
  const { cmd, args, env } = command(lang, wd);
  args[args.length - 1] = path.join(wd, scriptName);
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: wd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('close', (code) => {
      const stdout = Buffer.concat(out);
      resolve({ code, stdout, out: stdout.toString(), err: Buffer.concat(err).toString() });
    });
  });
}

/** NUL-separated strings: how bash scripts get arbitrary keys and values without quoting. */
const nulFile = (wd: string, name: string, items: string[]) =>
  fs.writeFileSync(path.join(wd, name), items.map((s) => `${s}\0`).join(''));
const splitNul = (b: Buffer) => b.toString('utf8').split('\0').slice(0, -1);

/** out/ as name -> content. */
function outFiles(wd: string): Record<string, string> {
  const dir = path.join(wd, 'out');
  const res: Record<string, string> = {};
  for (const f of fs.readdirSync(dir)) res[f] = fs.readFileSync(path.join(dir, f), 'utf8');
  return res;
}

/** The out/var.<n> records as [key, val, type], by n. */
function records(wd: string): [string, string, string][] {
  const files = outFiles(wd);
  const res: [string, string, string][] = [];
  for (let n = 1; `var.${n}.key` in files; n++) {
    res.push([files[`var.${n}.key`], files[`var.${n}.val`], files[`var.${n}.type`]]);
  }
  const count = Object.keys(files).filter((f) => f.startsWith('var.')).length;
  expect(count).toBe(res.length * 3); // contiguous, complete records
  return res;
}

// ---------------------------------------------------------------- data

const TRICKY: Record<string, string> = {
  quotes: `it's "quoted" '' \\' \\"`,
  newlines: 'line1\nline2\n\nline4\n\n',
  leading: '\n\n  indented\t',
  subst: '$(touch PWNED) ${HOME} $HOME',
  backtick: '`touch PWNED`',
  unicode: 'héllo wörld ✓ 日本語 🚀',
  backslashes: 'C:\\path\\to\\n \\\\ \\u00e9 \\x41 \\',
  special: '; rm -rf / ; & | > < * ? [a] ~ # \t tab %s %d',
  jsonString: '"a JSON string literal, kept as text"',
  empty: '',
};
const TRICKY_KEYS = [
  'my key/with spaces ✓ é',
  "k'ey]$(touch PWNED)`x`[0]",
  'back\\slash "dq" %41 +plus',
  '@',
];

function tricky(): { values: Record<string, string>; keys: string[] } {
  const values: Record<string, string> = {};
  for (const [k, v] of Object.entries(TRICKY)) values[k] = v.replace(/PWNED/g, pwned);
  return { values, keys: TRICKY_KEYS.map((k) => k.replace(/PWNED/g, pwned)) };
}

function snapshot() {
  const { values, keys } = tricky();
  const vars: Record<string, unknown> = {
    str: 'hello',
    num: 42,
    float: 1.5,
    bool: false,
    nul: null,
    obj: { a: [1, 'x', null], 'b c': { d: 'é' } },
    arr: ['x', 2],
    numericString: '42',
  };
  for (const [k, v] of Object.entries(values)) vars[`t_${k}`] = v;
  keys.forEach((k, i) => (vars[k] = `value of key ${i} ✓`));
  return vars;
}

const PY_PRELUDE = 'import json, sys\ndata = json.load(open("data.json", encoding="utf-8"))\n';
const JS_PRELUDE =
  'const fs = require("fs");\nconst data = JSON.parse(fs.readFileSync("data.json", "utf8"));\n';

// ---------------------------------------------------------------- tests

describe('runtime helpers, bundled mode', () => {
  afterEach(() => {
    expect(fs.existsSync(pwned)).toBe(false);
  });

  describe('read the snapshot', () => {
    const vars = snapshot();
    const keys = [...Object.keys(vars), 'unset-key', 'unset key ✓'];
    const input = { items: [1, 2], note: `it's "x" $(touch PWNED)\n✓` };

    it('bash: input and getVariable print strings raw, anything else as JSON; event prints the context', () => {
      const wd = workDir(vars, input);
      nulFile(wd, 'keys', keys);
      const res = run(
        'bash',
        wd,
        `set -euo pipefail
cronium.input; printf '\\0'
cronium.event; printf '\\0'
while IFS= read -r -d '' k; do
  rc=0; cronium.getVariable "$k" || rc=$?
  printf '\\0%s\\0' "$rc"
done <keys
`,
      );
      expect(res.err).toBe('');
      expect(res.code).toBe(0);
      const parts = splitNul(res.stdout);
      expect(parts[0]).toBe(JSON.stringify(input));
      expect(JSON.parse(parts[1])).toEqual(CONTEXT);
      const got = parts.slice(2);
      keys.forEach((k, i) => {
        const [value, rc] = [got[2 * i], got[2 * i + 1]];
        if (k in vars) {
          expect([k, value, rc]).toEqual([k, raw(vars[k]), '0']);
        } else {
          expect([k, value, rc]).toEqual([k, '', '1']);
        }
      });
    });

    it('bash: string input prints raw; no input prints null', () => {
      let res = run('bash', workDir({}, 'multi\nline $(x) ✓\n'), 'cronium.input');
      expect(res.out).toBe('multi\nline $(x) ✓\n');
      res = run('bash', workDir({}, null), 'cronium.input');
      expect(res.out).toBe('null');
      expect(res.code).toBe(0);
    });

    it('python: input, event and getVariable (with snake_case alias), without an import', () => {
      const wd = workDir(vars, input);
      fs.writeFileSync(path.join(wd, 'data.json'), JSON.stringify(keys));
      const res = run(
        'python',
        wd,
        `${PY_PRELUDE}import cronium as imported
assert imported is cronium
res = {"input": cronium.input(), "event": cronium.event(),
       "vars": [cronium.getVariable(k) for k in data],
       "alias": [cronium.get_variable(k) for k in data]}
print(json.dumps(res))
`,
      );
      expect(res.err).toBe('');
      expect(res.code).toBe(0);
      const got = JSON.parse(res.out);
      expect(got.input).toEqual(input);
      expect(got.event).toEqual(CONTEXT);
      const expected = keys.map((k) => (k in vars ? vars[k] : null));
      expect(got.vars).toEqual(expected);
      expect(got.alias).toEqual(expected);
    });

    it('node: input, event and getVariable (globalThis.cronium === require("cronium"))', () => {
      const wd = workDir(vars, input);
      fs.writeFileSync(path.join(wd, 'data.json'), JSON.stringify(keys));
      const res = run(
        'node',
        wd,
        `${JS_PRELUDE}(async () => {
  if (require('cronium') !== globalThis.cronium) throw new Error('two instances');
  const vals = [];
  for (const k of data) {
    const v = await cronium.getVariable(k);
    vals.push(v === undefined ? '<undefined>' : v);
  }
  console.log(JSON.stringify({ input: await cronium.input(), event: await cronium.event(), vals }));
})();
`,
      );
      expect(res.err).toBe('');
      expect(res.code).toBe(0);
      const got = JSON.parse(res.out);
      expect(got.input).toEqual(input);
      expect(got.event).toEqual(CONTEXT);
      expect(got.vals).toEqual(keys.map((k) => (k in vars ? vars[k] : '<undefined>')));
    });

    it('variables with keys such as __proto__ and constructor are plain data', () => {
      const wd = workDir(JSON.parse('{"__proto__":{"x":1},"constructor":"c","toString":2}'));
      const js = run(
        'node',
        wd,
        `(async () => console.log(JSON.stringify(await Promise.all(
          ['__proto__', 'constructor', 'toString', 'hasOwnProperty'].map((k) => cronium.getVariable(k).then((v) => v === undefined ? null : v))))))();`,
      );
      expect(js.err).toBe('');
      expect(JSON.parse(js.out)).toEqual([{ x: 1 }, 'c', 2, null]);
      const sh = run(
        'bash',
        wd,
        'cronium.getVariable __proto__; echo; cronium.getVariable toString',
      );
      expect(sh.out).toBe('{"x":1}\n2');
    });
  });

  describe('tricky values and keys round-trip, read-your-writes, out/ records', () => {
    it('bash: setVariable stores the text (type auto), getVariable reads it back unchanged', () => {
      const { values, keys } = tricky();
      const pairs: [string, string][] = [
        ...Object.entries(values),
        ...keys.map((k, i): [string, string] => [k, Object.values(values)[i]]),
        ['json', '{"a": [1, "x"]}'],
        ['str', 'overwritten'],
      ];
      const wd = workDir({ str: 'old' });
      nulFile(wd, 'pairs', pairs.flat());
      const res = run(
        'bash',
        wd,
        `set -euo pipefail
cronium.getVariable str >/dev/null # snapshot loaded before the writes
while IFS= read -r -d '' k && IFS= read -r -d '' v; do
  cronium.setVariable "$k" "$v"
done <pairs
while IFS= read -r -d '' k && IFS= read -r -d '' v; do
  cronium.getVariable "$k"; printf '\\0'
done <pairs
`,
      );
      expect(res.err).toBe('');
      expect(res.code).toBe(0);
      const expected = pairs.map(([, v]) => v);
      expected[expected.indexOf(values.jsonString)] = values.jsonString.slice(1, -1); // parses: a string
      expect(splitNul(res.stdout)).toEqual(expected);
      expect(records(wd)).toEqual(pairs.map(([k, v]) => [k, v, 'auto']));
    });

    it('bash: JSON text is read back as its value: strings decoded, the rest as given', () => {
      const wd = workDir({});
      const texts = [
        '"plain"',
        ' \n"spaced"\t',
        '"esc \\" \\\\ \\/ \\b\\f\\n\\r\\t \\u00e9 \\u2713 \\ud83d\\ude80 \\uD83D\\uDE80"',
        '"lone \\ud800 x"',
        '"bad escape \\q"',
        '"unescaped " quote"',
        '"raw\nnewline"',
        '"unterminated',
        '{"a": 1}',
        '42',
        'true',
      ];
      nulFile(wd, 'texts', texts);
      const res = run(
        'bash',
        wd,
        `i=0
while IFS= read -r -d '' t; do i=$((i+1)); cronium.setVariable "k$i" "$t"; done <texts
for ((j=1; j<=i; j++)); do cronium.getVariable "k$j"; printf '\\0'; done
`,
      );
      expect(res.err).toBe('');
      const decode = (t: string) => {
        try {
          const v = JSON.parse(t);
          return typeof v === 'string' ? Buffer.from(v, 'utf8').toString('utf8') : t;
        } catch {
          return t;
        }
      };
      expect(splitNul(res.stdout)).toEqual(texts.map(decode));
    });

    it('bash: values may come on stdin (one trailing newline dropped), also from a pipeline subshell', () => {
      const wd = workDir({});
      const res = run(
        'bash',
        wd,
        `set -euo pipefail
echo hi | cronium.output
printf 'multi\\nline\\n\\n' | cronium.setVariable piped
cronium.getVariable piped; printf '\\0'
cronium.setVariable fromstdin
cronium.getVariable fromstdin; printf '\\0'
`,
        '{"from": "stdin"}\n',
      );
      expect(res.err).toBe('');
      expect(splitNul(res.stdout)).toEqual(['multi\nline\n', '{"from": "stdin"}']);
      const files = outFiles(wd);
      expect([files['output.val'], files['output.type']]).toEqual(['hi', 'auto']);
      expect(records(wd)).toEqual([
        ['piped', 'multi\nline\n', 'auto'],
        ['fromstdin', '{"from": "stdin"}', 'auto'],
      ]);
    });

    it.each(['python', 'node'] as Lang[])(
      '%s: setVariable stores JSON (type json), getVariable reads it back',
      (lang) => {
        const { values, keys } = tricky();
        const pairs: [string, unknown][] = [
          ...Object.entries(values),
          ...keys.map((k, i): [string, unknown] => [k, Object.values(values)[i]]),
          ['obj', { nested: [1, 'é', null, { q: `"'` }], n: -1.25 }],
          ['nul', null],
          ['str', 'overwritten'],
        ];
        const wd = workDir({ str: 'old' });
        fs.writeFileSync(path.join(wd, 'data.json'), JSON.stringify(pairs));
        const script =
          lang === 'python'
            ? `${PY_PRELUDE}cronium.getVariable("str")
for k, v in data:
    cronium.set_variable(k, v)
print(json.dumps([cronium.getVariable(k) for k, _ in data]))
`
            : `${JS_PRELUDE}(async () => {
  await cronium.getVariable('str');
  for (const [k, v] of data) await cronium.setVariable(k, v);
  const got = [];
  for (const [k] of data) got.push(await cronium.getVariable(k));
  console.log(JSON.stringify(got));
})();
`;
        const res = run(lang, wd, script);
        expect(res.err).toBe('');
        expect(res.code).toBe(0);
        expect(JSON.parse(res.out)).toEqual(pairs.map(([, v]) => v));
        const recs = records(wd);
        expect(recs.map(([k, , t]) => [k, t])).toEqual(pairs.map(([k]) => [k, 'json']));
        expect(recs.map(([, v]) => JSON.parse(v))).toEqual(pairs.map(([, v]) => v));
      },
    );

    it('writes of other processes and languages are read back (replayed from out/)', () => {
      const wd = workDir({ shared: 'snapshot' });
      const res = run(
        'bash',
        wd,
        `set -euo pipefail
cronium.getVariable shared; printf '\\0'
python3 -c 'import cronium; cronium.setVariable("shared", "from \\"python\\"\\n"); cronium.setVariable("n", {"a": 1})'
cronium.getVariable shared; printf '\\0'
cronium.getVariable n; printf '\\0'
node -e 'cronium.setVariable("shared", ["from node"])'
cronium.getVariable shared; printf '\\0'
bash -c 'cronium.setVariable shared "from bash"'
cronium.getVariable shared; printf '\\0'
`,
        '',
        { PYTHONPATH: helpers, NODE_OPTIONS: `-r ${path.join(helpers, 'cronium.js')}` },
      );
      expect(res.err).toBe('');
      expect(splitNul(res.stdout)).toEqual([
        'snapshot',
        'from "python"\n',
        '{"a":1}',
        '["from node"]',
        'from bash',
      ]);
      const py = run(
        'python',
        wd,
        'print(repr(cronium.getVariable("shared")), cronium.getVariable("n"))',
      );
      expect(py.out).toBe("'from bash' {'a': 1}\n");
    });

    it('concurrent writers never share a record', async () => {
      const wd = workDir({});
      const N = 15;
      fs.writeFileSync(
        path.join(wd, 's.sh'),
        `for ((i=0; i<${N}; i++)); do cronium.setVariable "bash-$i" "v$i"; done`,
      );
      fs.writeFileSync(
        path.join(wd, 's.py'),
        `for i in range(${N}):\n    cronium.setVariable("python-%d" % i, "v%d" % i)\n`,
      );
      fs.writeFileSync(
        path.join(wd, 's.js'),
        `(async () => { for (let i = 0; i < ${N}; i++) await cronium.setVariable('node-' + i, 'v' + i); })();`,
      );
      const results = await Promise.all([
        runAsync('bash', wd, 's.sh'),
        runAsync('python', wd, 's.py'),
        runAsync('node', wd, 's.js'),
        runAsync('bash', wd, 's.sh'),
      ]);
      for (const r of results) expect([r.code, r.err]).toEqual([0, '']);
      const recs = records(wd);
      expect(recs).toHaveLength(4 * N);
      for (const [k, v, t] of recs) {
        const [lang, i] = k.split('-');
        expect(v).toBe(lang === 'bash' ? `v${i}` : `"v${i}"`);
        expect(t).toBe(lang === 'bash' ? 'auto' : 'json');
      }
      expect(recs.filter(([k]) => k === 'bash-3')).toHaveLength(2);
    });
  });

  describe('output and condition', () => {
    it('bash: output stores the text (type auto), last write wins; setCondition', () => {
      const wd = workDir();
      const res = run(
        'bash',
        wd,
        `set -euo pipefail
cronium.output 'first'
cronium.output '{"a":1}'
cronium.setCondition false
cronium.setCondition true
cronium.setCondition yes || echo "rc=$?"
`,
      );
      expect(res.out).toBe('rc=1\n');
      expect(res.err).toBe('cronium.setCondition: usage: cronium.setCondition true|false\n');
      expect(outFiles(wd)).toEqual({
        'output.val': '{"a":1}',
        'output.type': 'auto',
        condition: 'true',
      });
    });

    it('bash: a tricky output text is written byte for byte', () => {
      const { values } = tricky();
      const wd = workDir();
      nulFile(wd, 'v', [values.quotes + values.newlines + values.subst + values.unicode]);
      const res = run('bash', wd, `IFS= read -r -d '' v <v; cronium.output "$v"`);
      expect(res.code).toBe(0);
      expect(outFiles(wd)['output.val']).toBe(
        values.quotes + values.newlines + values.subst + values.unicode,
      );
    });

    it.each(['python', 'node'] as Lang[])(
      '%s: output stores JSON (type json); setCondition',
      (lang) => {
        const wd = workDir();
        const value = { a: [1, 'é', null], s: `it's "x"\n` };
        fs.writeFileSync(path.join(wd, 'data.json'), JSON.stringify(value));
        const script =
          lang === 'python'
            ? `${PY_PRELUDE}cronium.output("first")
cronium.output(data)
cronium.set_condition(True)
cronium.setCondition(False)
try:
    cronium.setCondition("yes")
except cronium.CroniumError as e:
    print(e)
`
            : `${JS_PRELUDE}(async () => {
  await cronium.output('first');
  await cronium.output(data);
  await cronium.setCondition(true);
  await cronium.setCondition(false);
  await cronium.setCondition('yes').catch((e) => console.log(e.message));
})();
`;
        const res = run(lang, wd, script);
        expect(res.err).toBe('');
        expect(res.out).toMatch(/^setCondition takes a bool/);
        const files = outFiles(wd);
        expect(JSON.parse(files['output.val'])).toEqual(value);
        expect([files['output.type'], files.condition]).toEqual(['json', 'false']);
      },
    );
  });

  describe('toolAction needs API mode', () => {
    it('bash', () => {
      const res = run(
        'bash',
        workDir(),
        `cronium.toolAction slack send '{"text":"hi"}'; echo "rc=$?"`,
      );
      expect(res.out).toBe('rc=1\n');
      expect(res.err).toBe(`cronium.toolAction: ${TOOL_ERROR}\n`);
    });

    it('python', () => {
      const res = run(
        'python',
        workDir(),
        `try:
    cronium.tool_action("slack", "send", {"text": "hi"})
except cronium.CroniumError as e:
    print(type(e).__name__, e)
`,
      );
      expect(res.err).toBe('');
      expect(res.out).toBe(`CroniumError ${TOOL_ERROR}\n`);
    });

    it('node', () => {
      const res = run(
        'node',
        workDir(),
        `cronium.toolAction('slack', 'send', {}).then(() => console.log('resolved'), (e) => console.log(e instanceof cronium.CroniumError, e.name, e.message));`,
      );
      expect(res.err).toBe('');
      expect(res.out).toBe(`true CroniumError ${TOOL_ERROR}\n`);
    });
  });

  describe('errors', () => {
    it('a missing snapshot file is an error, not an unset variable', () => {
      const wd = workDir();
      for (const f of ['variables.sh', 'variables.json', 'input.json']) fs.rmSync(path.join(wd, f));
      const sh = run('bash', wd, 'cronium.getVariable x; echo "rc=$?"');
      expect(sh.out).toBe('rc=1\n');
      expect(sh.err).toBe(`cronium.getVariable: ${wd}/variables.sh is missing (bundled mode)\n`);
      const py = run(
        'python',
        wd,
        'for f in (lambda: cronium.getVariable("x"), cronium.input):\n    try:\n        f()\n    except cronium.CroniumError as e:\n        print(e)\n',
      );
      expect(py.out).toMatch(/^cannot read .*variables\.json.*\ncannot read .*input\.json/);
      const js = run('node', wd, `cronium.getVariable('x').catch((e) => console.log(e.message));`);
      expect(js.out).toMatch(/^cannot read .*variables\.json/);
    });

    it('bad keys and arguments', () => {
      const wd = workDir();
      const long = 'é'.repeat(101); // 202 bytes
      const sh = run(
        'bash',
        wd,
        `cronium.setVariable '' x; echo "rc=$?"; cronium.getVariable ${long}; echo "rc=$?"; cronium.getVariable; echo "rc=$?"`,
      );
      expect(sh.out).toBe('rc=1\nrc=1\nrc=1\n');
      expect(sh.err).toBe(
        'cronium.setVariable: a variable key is 1-200 UTF-8 bytes\n' +
          'cronium.getVariable: a variable key is 1-200 UTF-8 bytes\n' +
          'cronium.getVariable: usage: cronium.getVariable KEY\n',
      );
      const py = run(
        'python',
        wd,
        `for f in (lambda: cronium.setVariable("", 1), lambda: cronium.getVariable("${long}"), lambda: cronium.setVariable("k", object()), lambda: cronium.output(float("nan"))):
    try:
        f()
    except cronium.CroniumError as e:
        print(e)
`,
      );
      expect(py.err).toBe('');
      expect(py.out.split('\n')).toEqual([
        'a variable key is a string of 1-200 UTF-8 bytes',
        'a variable key is a string of 1-200 UTF-8 bytes',
        expect.stringMatching(/^value is not JSON-serializable/),
        expect.stringMatching(/^value is not JSON-serializable/),
        '',
      ]);
      const js = run(
        'node',
        wd,
        `(async () => {
  for (const f of [() => cronium.setVariable('', 1), () => cronium.getVariable('${long}'), () => cronium.setVariable('k', undefined), () => cronium.output(10n)]) {
    await f().then(() => console.log('ok'), (e) => console.log(e.message));
  }
})();`,
      );
      expect(js.err).toBe('');
      expect(js.out.split('\n')).toEqual([
        'a variable key is a string of 1-200 UTF-8 bytes',
        'a variable key is a string of 1-200 UTF-8 bytes',
        'value is not JSON-serializable: undefined',
        expect.stringMatching(/^value is not JSON-serializable/),
        '',
      ]);
      expect(fs.existsSync(path.join(wd, 'out'))).toBe(false);
    });

    it('an unknown CRONIUM_HELPER_MODE is reported', () => {
      const wd = workDir();
      const env = { CRONIUM_HELPER_MODE: 'carrier-pigeon' };
      expect(run('bash', wd, 'cronium.input', '', env).err).toBe(
        "cronium.input: CRONIUM_HELPER_MODE must be api or bundled (got 'carrier-pigeon')\n",
      );
      expect(
        run(
          'python',
          wd,
          'try:\n    cronium.input()\nexcept cronium.CroniumError as e:\n    print(e)',
          '',
          env,
        ).out,
      ).toBe("CRONIUM_HELPER_MODE must be api or bundled (got 'carrier-pigeon')\n");
    });
  });

  it("agrees with the service's side: its bundledFiles in, its readBundledResults out", () => {
    const vars = snapshot();
    const input = { note: `it's $(touch PWNED)\n✓`.replace('PWNED', pwned) };
    const wd = path.join(tmp, 'service-files');
    fs.mkdirSync(wd);
    for (const [name, data] of Object.entries(bundledFiles(CONTEXT, input, vars))) {
      fs.writeFileSync(path.join(wd, name), data);
    }
    const keys = Object.keys(vars);
    nulFile(wd, 'keys', keys);
    const sh = run(
      'bash',
      wd,
      `set -euo pipefail
cronium.input; printf '\\0'
while IFS= read -r -d '' k; do cronium.getVariable "$k"; printf '\\0'; done <keys
while IFS= read -r -d '' k; do v=$(cronium.getVariable "$k"; printf x); cronium.setVariable "$k" "\${v%x}"; done <keys
cronium.output '{"from": "bash"}'
cronium.setCondition true
`,
    );
    expect(sh.err).toBe('');
    expect(splitNul(sh.stdout)).toEqual([JSON.stringify(input), ...keys.map((k) => raw(vars[k]))]);
    fs.writeFileSync(path.join(wd, 'data.json'), JSON.stringify(keys));
    const py = run(
      'python',
      wd,
      `${PY_PRELUDE}for k in data:\n    cronium.setVariable(k, {"py": cronium.getVariable(k)})\n`,
    );
    expect(py.err).toBe('');
    const js = run('node', wd, `cronium.output(['node']).then(() => cronium.setCondition(false));`);
    expect(js.err).toBe('');

    const files = new Map<string, Buffer>();
    for (const f of fs.readdirSync(path.join(wd, 'out'))) {
      files.set(f, fs.readFileSync(path.join(wd, 'out', f)));
    }
    const r = readBundledResults(files, 64);
    expect(r.output).toEqual({ set: true, value: ['node'] });
    expect(r.condition).toBe(false);
    // bash stores the raw text back with auto semantics: strings that parse as JSON
    // (numericString '42', the JSON string literal) come back as what they parse to
    const viaBash = (v: unknown) => {
      if (typeof v !== 'string') return v;
      try {
        return JSON.parse(v);
      } catch {
        return v;
      }
    };
    expect(r.variables).toEqual([
      ...keys.map((k) => [k, viaBash(vars[k])]),
      ...keys.map((k) => [k, { py: viaBash(vars[k]) }]),
    ]);
  });

  describe('bash: cronium.sh is harmless to source', () => {
    const probe = `compgen -v | LC_ALL=C sort; echo ---; { compgen -A function || :; } | LC_ALL=C sort; echo ---; echo "$-"; shopt -p; set +o; trap -p`;

    function state(benv: string, flags: string[] = []) {
      const r = spawnSync('bash', [...flags, '-c', probe], {
        // SHLVL: a bash whose stdin is a socket (node's pipes) otherwise reads ~/.bashrc
        env: { PATH: process.env.PATH, BASH_ENV: benv, LANG: 'C.UTF-8', SHLVL: '1' },
      });
      return {
        out: r.stdout.toString().replace(/^BASH_ENV\n/m, ''),
        err: r.stderr.toString(),
        code: r.status,
      };
    }

    it.each(['bash-env.sh', 'cronium.sh'])(
      '%s defines only cronium.* functions: no output, variables, options or traps',
      (file) => {
        const empty = path.join(tmp, 'empty.sh');
        fs.writeFileSync(empty, '');
        for (const flags of [[], ['-euo', 'pipefail'], ['-u', '-f']]) {
          const base = state(empty, flags);
          const ours = state(path.join(helpers, file), flags);
          expect(ours.err).toBe('');
          expect(ours.code).toBe(0);
          // PIPESTATUS: bash sets it after any command, ours just ran the first one
          const [v1, f1, o1] = base.out.replace(/^PIPESTATUS\n/m, '').split('---\n');
          const [v2, f2, o2] = ours.out.replace(/^PIPESTATUS\n/m, '').split('---\n');
          expect(v2).toBe(v1);
          expect(o2).toBe(o1);
          const added = f2.split('\n').filter((f) => f && !f1.split('\n').includes(f));
          expect(added.every((f) => f.startsWith('cronium.') || f.startsWith('_cronium_'))).toBe(
            true,
          );
          expect(added.filter((f) => f.startsWith('cronium.')).sort()).toEqual(
            [
              'cronium.event',
              'cronium.getVariable',
              'cronium.input',
              'cronium.output',
              'cronium.setCondition',
              'cronium.setVariable',
              'cronium.toolAction',
            ].sort(),
          );
        }
      },
    );

    it('calls keep the caller options (noclobber, xtrace, errexit) and define only _cronium_* globals', () => {
      const wd = workDir({ a: 'x' });
      const res = run(
        'bash',
        wd,
        `set -euo pipefail
before=$(compgen -v | LC_ALL=C sort)
o1="$-|$(set +o)"
cronium.setVariable a 1; cronium.getVariable a >/dev/null; cronium.output o; cronium.input >/dev/null
o2="$-|$(set +o)"
set -C; cronium.setVariable b 2; o3=$-; set +C
[[ "$o1" == "$o2" && "$o3" == *C* ]] && echo same-options
comm -13 <(printf '%s\\n' "$before") <(compgen -v | LC_ALL=C sort) | grep -v -e '^_cronium_' -e '^CRONIUM_VARS$' -e '^CRONIUM_INPUT_RAW$' -e '^o[123]$' -e '^before$' || echo no-other-globals
set -x
cronium.getVariable a
`,
      );
      expect(res.code).toBe(0);
      expect(res.out).toBe('same-options\nno-other-globals\n1');
      // xtrace of the caller does not trace the internals (bash >= 4.4)
      expect(res.err.split('\n').filter((l) => l.startsWith('+')).length).toBeLessThanOrEqual(4);
    });

    it('the stub loads the helpers on the first call: status, set -e, ERR trap and xtrace as with them', () => {
      const wd = workDir({ a: 'x' });
      const first = run('bash', wd, `set -x\ncronium.getVariable a\n`);
      expect(first.out).toBe('x');
      expect(first.err.split('\n').filter((l) => l.startsWith('+')).length).toBeLessThanOrEqual(4);
      const err = run(
        'bash',
        wd,
        `set -E; trap 'echo ERR' ERR\ncronium.getVariable missing; echo "rc=$?"\nset -e\ncronium.getVariable missing\necho not-here\n`,
      );
      expect(err.out).toBe('ERR\nrc=1\nERR\n');
      expect(err.code).toBe(1);
      const sub = run('bash', wd, `echo 2 | cronium.setVariable b; cronium.getVariable b`);
      expect(sub.out).toBe('2');
    });

    it('child bash processes source it silently', () => {
      const res = run('bash', workDir(), `bash -c 'echo child'; bash -euc 'cronium.input'`);
      expect(res.err).toBe('');
      expect(res.out).toBe('child\nnull');
    });
  });
});
