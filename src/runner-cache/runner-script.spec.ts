/**
 * Runs remote/runner.sh locally (no ssh) under `sh`, speaking the protocol of
 * docs/runner-protocol.md on its stdin, the way the service does over an exec channel.
 */
import { ChildProcessWithoutNullStreams, execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ScriptType } from '../executions/request';

const REMOTE_DIR = path.resolve(__dirname, 'remote');
const VERSION = fs.readFileSync(path.join(REMOTE_DIR, 'VERSION'), 'utf8').trim();
const [UNAME_S, UNAME_M] = execFileSync('uname', ['-sm']).toString().trim().split(' ');
const READY = `CRONIUM1 ready ${VERSION} ${UNAME_S} ${UNAME_M}\n`;
/** The remote command line is `sh runner.sh ...`; RUNNER_TEST_SHELL="busybox sh" tries another sh. */
const SHELL = (process.env.RUNNER_TEST_SHELL ?? 'sh').split(' ');

jest.setTimeout(20000);

// ---------------------------------------------------------------- protocol helpers

interface Section {
  name: string;
  data: string | Buffer;
}

/** `export NAME='value'` lines, `'` written as `'\''` (protocol doc, `env` section). */
function envSection(vars: Record<string, string>): Section {
  const lines = Object.entries(vars).map(([k, v]) => `export ${k}='${v.replace(/'/g, `'\\''`)}'\n`);
  return { name: 'env', data: lines.join('') };
}

/** Header line + `<name> <byteLength>\n<bytes>` sections. */
function frame(runId: string, type: string, grace: number | string, sections: Section[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`CRONIUM1 ${runId} ${type} ${grace} ${sections.length}\n`)];
  for (const s of sections) {
    const data = Buffer.isBuffer(s.data) ? s.data : Buffer.from(s.data, 'utf8');
    parts.push(Buffer.from(`${s.name} ${data.length}\n`), data);
  }
  return Buffer.concat(parts);
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  ms: number;
  stdout: Buffer;
  stderr: Buffer;
}

class Runner {
  readonly child: ChildProcessWithoutNullStreams;
  readonly done: Promise<Exit>;
  private out: Buffer[] = [];
  private err: Buffer[] = [];

  constructor(script: string, args: string[], input: Buffer, endStdin: boolean) {
    const t0 = Date.now();
    this.child = spawn(SHELL[0], [...SHELL.slice(1), script, ...args], { stdio: 'pipe' });
    this.child.stdin.on('error', () => undefined); // EPIPE once the runner is gone
    this.child.stdout.on('data', (b: Buffer) => this.out.push(b));
    this.child.stderr.on('data', (b: Buffer) => this.err.push(b));
    // 'close' (not 'exit'): also waits until every holder of stdout/stderr is gone.
    this.done = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        this.child.stdin.destroy();
        resolve({ code, signal, ms: Date.now() - t0, stdout: this.stdout, stderr: this.stderr });
      });
    });
    this.child.stdin.write(input);
    if (endStdin) this.child.stdin.end();
  }

  get stdout(): Buffer {
    return Buffer.concat(this.out);
  }
  get stderr(): Buffer {
    return Buffer.concat(this.err);
  }

  send(line: string): void {
    this.child.stdin.write(line);
  }
  closeStdin(): void {
    this.child.stdin.end();
  }

  /** Wait for the runner; kill it (by pid) and fail if it takes too long. */
  async finish(timeoutMs = 10000): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        reject(new Error(`runner did not finish within ${timeoutMs}ms`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.done, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async waitForStdout(text: string, timeoutMs = 5000): Promise<void> {
    await waitUntil(() => this.stdout.includes(text), timeoutMs, `stdout to contain ${text}`);
  }
}

async function waitUntil(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Unique sleep durations are the process markers: `sleep 31234567` matches nothing else. */
function markers(n: number): number[] {
  return Array.from({ length: n }, () => 30000000 + randomInt(9999999));
}
function pidsOf(marker: number): number[] {
  const r = spawnSync('pgrep', ['-f', `^sleep ${marker}$`]);
  return r
    .stdout!.toString()
    .split('\n')
    .filter(Boolean)
    .map(Number)
    .filter((p) => p !== r.pid);
}
function survivors(ms: number[]): number[] {
  return ms.flatMap(pidsOf);
}

// ---------------------------------------------------------------- fixture

let base: string;
let runnerPath: string;
let runSeq = 0;
const started: number[] = []; // markers started by tests, cleaned up by pid afterwards

beforeAll(() => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-runner-'));
  const rd = path.join(base, 'runners', 'f4ce0000deadbeef');
  fs.cpSync(REMOTE_DIR, rd, { recursive: true });
  runnerPath = path.join(rd, 'runner.sh');
});

afterAll(() => {
  for (const pid of survivors(started)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  fs.rmSync(base, { recursive: true, force: true });
});

function newRunId(): string {
  return `run-${process.pid}-${++runSeq}`;
}
const runDir = (runId: string) => path.join(base, 'runs', runId);
/** The run dir is removed in the background after the runner reports the exit status. */
const runDirGone = (runId: string) =>
  waitUntil(() => !fs.existsSync(runDir(runId)), 3000, `run dir ${runId} removed`);

function start(
  runId: string,
  type: ScriptType | string,
  sections: Section[],
  opts: { grace?: number | string; endStdin?: boolean } = {},
): Runner {
  return new Runner(
    runnerPath,
    ['run'],
    frame(runId, type, opts.grace ?? 1, sections),
    opts.endStdin ?? false,
  );
}

/** Run to completion with stdin held open (EOF would cancel), then close it. */
async function runScript(
  type: ScriptType,
  script: string | Buffer,
  extra: Section[] = [],
): Promise<Exit & { runId: string }> {
  const runId = newRunId();
  const r = start(runId, type, [...extra, { name: 'script', data: script }]);
  const res = await r.finish();
  return { ...res, runId };
}

// ---------------------------------------------------------------- tests

describe('runner.sh', () => {
  it('is valid POSIX sh and embeds the VERSION file', () => {
    expect(spawnSync('sh', ['-n', path.join(REMOTE_DIR, 'runner.sh')]).status).toBe(0);
    const src = fs.readFileSync(path.join(REMOTE_DIR, 'runner.sh'), 'utf8');
    expect(src).toMatch(new RegExp(`^cr_version=${VERSION.replace(/\./g, '\\.')} `, 'm'));
    expect(VERSION).toBe('1.0.0');
  });

  describe('script types, streams and exit codes', () => {
    const scripts: Record<ScriptType, (code: number) => string> = {
      bash: (c) => `echo "out $1 line"\necho "err line" >&2\nprintf 'no-newline'\nexit ${c}\n`,
      python: (c) =>
        `import sys\nprint("out  line")\nprint("err line", file=sys.stderr)\n` +
        `sys.stdout.write("no-newline")\nsys.exit(${c})\n`,
      node: (c) =>
        `console.log("out  line");\nconsole.error("err line");\n` +
        `process.stdout.write("no-newline");\nprocess.exitCode = ${c};\n`,
    };
    const cases: [ScriptType, number][] = [];
    for (const t of ['bash', 'python', 'node'] as ScriptType[])
      for (const c of [0, 3, 42]) cases.push([t, c]);

    it.each(cases)('%s exits %i with separate stdout/stderr', async (type, code) => {
      const res = await runScript(type, scripts[type](code));
      expect(res.stderr.toString()).toBe('err line\n');
      expect(res.stdout.toString()).toBe(`${READY}out  line\nno-newline`);
      expect(res.code).toBe(code);
      await runDirGone(res.runId);
    });
  });

  it('announces ready with version, os and arch on the first line, cached in host-info', async () => {
    const res = await runScript('bash', 'echo ok');
    expect(res.stdout.toString()).toBe(`CRONIUM1 ready 1.0.0 ${UNAME_S} ${UNAME_M}\nok\n`);
    const hostInfo = path.join(path.dirname(runnerPath), 'host-info');
    expect(fs.readFileSync(hostInfo, 'utf8')).toBe(`${UNAME_S} ${UNAME_M}\n`);
    expect(
      fs.readdirSync(path.dirname(runnerPath)).filter((f) => f.startsWith('host-info.')),
    ).toEqual([]);
  });

  it('passes env values through unchanged and never executes them', async () => {
    const pwned = path.join(base, `pwned-${randomInt(1e9)}`);
    const vars: Record<string, string> = {
      V_QUOTES: `it's "quoted" '' \\' \\"`,
      V_NEWLINES: 'line1\nline2\n\nline4\n',
      V_SUBST: `$(touch ${pwned}) \${HOME} $HOME`,
      V_BACKTICK: `\`touch ${pwned}\``,
      V_UNICODE: 'héllo wörld ✓ 日本語 🚀',
      V_SPECIAL: '; rm -rf / ; & | > < * ? [a] ~ # \\ \\\\ \t tab',
      V_EMPTY: '',
    };
    const names = Object.keys(vars);
    const bash = names.map((n) => `printf '%s\\0' "$${n}"`).join('\n');
    const res = await runScript('bash', bash, [envSection(vars)]);
    expect(res.code).toBe(0);
    expect(res.stdout.subarray(READY.length).toString('utf8').split('\0').slice(0, -1)).toEqual(
      names.map((n) => vars[n]),
    );

    const node = `process.stdout.write(JSON.stringify(${JSON.stringify(names)}.map((n) => process.env[n])))`;
    const res2 = await runScript('node', node, [envSection(vars)]);
    expect(res2.code).toBe(0);
    expect(JSON.parse(res2.stdout.subarray(READY.length).toString('utf8'))).toEqual(
      names.map((n) => vars[n]),
    );
    expect(fs.existsSync(pwned)).toBe(false);
  });

  it('sets up the runtime environment after env, which may override PATH but not helpers', async () => {
    const bin = path.join(base, 'userbin');
    fs.mkdirSync(bin, { recursive: true });
    fs.writeFileSync(path.join(bin, 'mytool'), '#!/bin/sh\necho mytool-ran\n', { mode: 0o755 });
    const env = envSection({
      PATH: `${bin}:${process.env.PATH}`,
      BASH_ENV: '/nonexistent',
      PYTHONPATH: '/user/py',
      CRONIUM_WORK_DIR: '/custom/work',
      cr_dir: 'not-the-runner',
    });
    const rd = path.dirname(runnerPath);
    const res = await runScript(
      'bash',
      'mytool; echo "$BASH_ENV|$CRONIUM_WORK_DIR|$PWD|$cr_dir"; read -r x || echo stdin-empty',
      [env],
    );
    expect(res.stdout.toString()).toBe(
      `${READY}mytool-ran\n${rd}/helpers/cronium.sh|/custom/work|${runDir(res.runId)}|not-the-runner\nstdin-empty\n`,
    );

    const py = await runScript(
      'python',
      'import os, sys, cronium\nprint(os.environ["PYTHONPATH"]); print(os.environ["CRONIUM_WORK_DIR"]); print(os.getcwd())',
      [envSection({ PYTHONPATH: '/user/py' })],
    );
    expect(py.stderr.toString()).toBe('');
    expect(py.stdout.toString()).toBe(
      `${READY}${rd}/helpers:/user/py\n${runDir(py.runId)}\n${runDir(py.runId)}\n`,
    );

    const js = await runScript('node', 'require("cronium"); console.log(process.env.NODE_PATH)');
    expect(js.stderr.toString()).toBe('');
    expect(js.stdout.toString()).toBe(`${READY}${rd}/helpers\n`);
  });

  it('reports a missing interpreter as the script failing with 127', async () => {
    const res = await runScript('bash', 'echo never', [envSection({ PATH: '/nonexistent' })]);
    expect(res.code).toBe(127);
    expect(res.stdout.toString()).toBe(READY);
    expect(res.stderr.toString()).toMatch(/bash/);
  });

  it('exits 143 when a bash script kills itself with TERM', async () => {
    const res = await runScript('bash', 'echo before\nkill -TERM $$\necho after');
    expect(res.code).toBe(143);
    expect(res.stdout.toString()).toBe(`${READY}before\n`);
    expect(res.stderr.toString()).toBe('');
  });

  describe('process tree', () => {
    const treeScript = (m: number[]) =>
      `sleep ${m[0]} &\n( sleep ${m[1]} ) &\nsh -c 'sleep ${m[2]} & wait' &\n` +
      `echo started\nsleep ${m[3]}\necho not-reached\n`;

    async function expectKilled(
      trigger: (r: Runner) => void,
      script: (m: number[]) => string,
      grace: number,
      expectCode: number,
    ) {
      const m = markers(4);
      started.push(...m);
      const runId = newRunId();
      const r = start(runId, 'bash', [{ name: 'script', data: script(m) }], { grace });
      await r.waitForStdout('started');
      await waitUntil(() => survivors(m).length === 4, 5000, 'all sleeps to start');
      const t0 = Date.now();
      trigger(r);
      const deadline = (grace + 1) * 1000;
      const res = await r.finish(deadline + 2000);
      expect(Date.now() - t0).toBeLessThan(deadline);
      expect(survivors(m)).toEqual([]);
      expect(res.code).toBe(expectCode);
      expect(res.stdout.toString()).toBe(`${READY}started\n`);
      expect(res.stderr.toString()).toBe(''); // no "Terminated" from the runner's shell
      await runDirGone(runId);
      expect(fs.existsSync(`${runDir(runId)}.cancel`)).toBe(false);
    }

    it('kills the whole tree on cancel', async () => {
      await expectKilled((r) => r.send('cancel\n'), treeScript, 2, 143);
    });

    it('kills the whole tree on timeout, ignoring unknown control lines', async () => {
      await expectKilled((r) => r.send('hello\n\nbogus words\ntimeout\n'), treeScript, 2, 143);
    });

    it('kills the whole tree on stdin EOF', async () => {
      await expectKilled((r) => r.closeStdin(), treeScript, 2, 143);
    });

    it('escalates to KILL after graceSeconds when TERM is ignored', async () => {
      const stubborn = (m: number[]) => `trap '' TERM\n${treeScript(m)}`;
      await expectKilled((r) => r.send('cancel\n'), stubborn, 1, 137);
    });

    it('kills a python script and its children on cancel', async () => {
      const m = markers(2);
      started.push(...m);
      const r = start(newRunId(), 'python', [
        {
          name: 'script',
          data:
            `import subprocess, time\nsubprocess.Popen(["sleep", "${m[0]}"])\n` +
            `subprocess.Popen(["sleep", "${m[1]}"])\nprint("started", flush=True)\ntime.sleep(300)\n`,
        },
      ]);
      await r.waitForStdout('started');
      await waitUntil(() => survivors(m).length === 2, 5000, 'sleeps to start');
      r.send('cancel\n');
      const res = await r.finish(3000);
      expect(res.code).toBe(143);
      expect(res.stderr.toString()).toBe('');
      expect(survivors(m)).toEqual([]);
    });

    it('exits promptly with the script code when it leaves background children', async () => {
      const m = markers(3);
      started.push(...m);
      const runId = newRunId();
      const r = start(
        runId,
        'bash',
        [
          {
            name: 'script',
            data: `sleep ${m[0]} &\nsleep ${m[1]} &\n(sleep ${m[2]}) &\necho bye\nexit 5\n`,
          },
        ],
        { grace: 5 },
      );
      const res = await r.finish(3000);
      expect(res.code).toBe(5);
      expect(res.ms).toBeLessThan(2000); // TERM kills them: no need to wait out the grace
      expect(res.stdout.toString()).toBe(`${READY}bye\n`);
      expect(survivors(m)).toEqual([]);
      await runDirGone(runId);
    });
  });

  describe('setup errors', () => {
    const okScript: Section = { name: 'script', data: 'echo hi' };

    async function expectError(input: Buffer, runId?: string, args = ['run']) {
      const r = new Runner(runnerPath, args, input, true);
      const res = await r.finish();
      expect(res.stdout.toString()).toMatch(/^CRONIUM1 error [^\n]+\n$/);
      expect(res.code).toBe(70);
      if (runId) await runDirGone(runId);
      return res;
    }

    it.each([
      ['runId with a slash', '../etc'],
      ['runId with a dot', 'a.b'],
      ['runId with unicode', 'runé'],
      ['runId of 65 chars', 'a'.repeat(65)],
    ])('rejects a %s', async (_what, runId) => {
      await expectError(frame(runId, 'bash', 1, [okScript]));
      expect(fs.readdirSync(path.join(base, 'runs')).filter((f) => !f.startsWith('run-'))).toEqual(
        [],
      );
    });

    it('accepts a runId of 64 chars', async () => {
      const runId = 'A-9'.repeat(21) + 'z';
      const r = start(runId, 'bash', [okScript]);
      const res = await r.finish();
      expect(res.code).toBe(0);
      expect(res.stdout.toString()).toBe(`${READY}hi\n`);
    });

    it.each([
      ['uppercase', 'Script'],
      ['leading dot', '.env'],
      ['slash', 'out/x'],
      ['dot-dot', 'a..b'],
      ['leading digit', '1abc'],
      ['space', 'a b'],
    ])('rejects a section name with %s', async (_what, name) => {
      const runId = newRunId();
      await expectError(frame(runId, 'bash', 1, [{ name, data: 'x' }, okScript]), runId);
    });

    it.each([
      ['non-numeric length', 'script abc\necho hi'],
      ['negative length', 'script -1\necho hi'],
      ['leading-zero length', 'script 07\necho hi'],
      ['missing length', 'script\necho hi'],
      ['extra field', 'script 7 8\necho hi'],
    ])('rejects a section header with %s', async (_what, body) => {
      const runId = newRunId();
      await expectError(Buffer.from(`CRONIUM1 ${runId} bash 1 1\n${body}`), runId);
    });

    it.each([
      ['bad magic', (id: string) => `CRONIUM2 ${id} bash 1 1\n`],
      ['bad script type', (id: string) => `CRONIUM1 ${id} ruby 1 1\n`],
      ['non-numeric grace', (id: string) => `CRONIUM1 ${id} bash x 1\n`],
      ['missing count', (id: string) => `CRONIUM1 ${id} bash 1\n`],
      ['CRLF', (id: string) => `CRONIUM1 ${id} bash 1 1\r\n`],
      ['empty input', () => ''],
    ])('rejects a header with %s', async (_what, header) => {
      const runId = newRunId();
      await expectError(Buffer.from(header(runId) + 'script 7\necho hi'), runId);
    });

    it('rejects truncated input, a missing script section and duplicates', async () => {
      let runId = newRunId();
      await expectError(Buffer.from(`CRONIUM1 ${runId} bash 1 2\nscript 7\necho hi`), runId);
      runId = newRunId();
      await expectError(frame(runId, 'bash', 1, [{ name: 'input.json', data: '{}' }]), runId);
      runId = newRunId();
      await expectError(frame(runId, 'bash', 1, [okScript, okScript]), runId);
    });

    it('refuses an existing run dir without touching it', async () => {
      const runId = newRunId();
      fs.mkdirSync(runDir(runId), { recursive: true });
      fs.writeFileSync(path.join(runDir(runId), 'precious'), 'x');
      const res = await expectError(frame(runId, 'bash', 1, [okScript]));
      expect(res.stdout.toString()).toMatch(/exists/);
      expect(fs.readFileSync(path.join(runDir(runId), 'precious'), 'utf8')).toBe('x');
    });

    it.each([[[]], [['exec']], [['run', 'extra']], [['collect']]])(
      'prints usage for argv %j',
      async (args) => {
        const res = await expectError(Buffer.alloc(0), undefined, args);
        expect(res.stdout.toString()).toBe('CRONIUM1 error usage\n');
      },
    );
  });

  describe('run dir and collect', () => {
    it('creates a private run dir holding the sections, removed after the run', async () => {
      const res = await runScript(
        'bash',
        'stat -c "%a %n" . env script input.json; cat input.json',
        [envSection({ A: '1' }), { name: 'input.json', data: '{"a":1}' }],
      );
      expect(res.stdout.toString()).toBe(
        `${READY}700 .\n600 env\n600 script\n600 input.json\n{"a":1}`,
      );
      await runDirGone(res.runId);
    });

    it('keeps the run dir with a keep section; collect prints out/ and removes it', async () => {
      const bin = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const runId = newRunId();
      const script =
        'mkdir out && printf \'{"ok":true}\' > out/result.json && : > out/empty ' +
        '&& cp blob out/bin.dat && mkdir out/subdir && echo done';
      const r = start(runId, 'bash', [
        { name: 'keep', data: '' },
        { name: 'blob', data: bin },
        { name: 'script', data: script },
      ]);
      const res = await r.finish();
      expect(res.code).toBe(0);
      expect(res.stdout.toString()).toBe(`${READY}done\n`);
      expect(fs.existsSync(path.join(runDir(runId), 'out', 'result.json'))).toBe(true);

      const c = await new Runner(runnerPath, ['collect', runId], Buffer.alloc(0), true).finish();
      expect(c.code).toBe(0);
      expect(c.stderr.toString()).toBe('');
      expect(c.stdout).toEqual(
        Buffer.concat([
          Buffer.from('CRONIUM1 collect 3\nbin.dat 256\n'),
          bin,
          Buffer.from('empty 0\nresult.json 11\n{"ok":true}'),
        ]),
      );
      await runDirGone(runId);
    });

    it('collect of a missing run dir prints an empty collection; bad runIds are refused', async () => {
      const c = await new Runner(
        runnerPath,
        ['collect', 'nope-123'],
        Buffer.alloc(0),
        true,
      ).finish();
      expect(c.stdout.toString()).toBe('CRONIUM1 collect 0\n');
      expect(c.code).toBe(0);
      const bad = await new Runner(runnerPath, ['collect', '../x'], Buffer.alloc(0), true).finish();
      expect(bad.stdout.toString()).toMatch(/^CRONIUM1 error /);
      expect(bad.code).toBe(70);
    });
  });

  describe('byte transparency', () => {
    it('passes a 200 KB line without newline and binary bytes through unchanged', async () => {
      const big = Buffer.from(
        Array.from(
          { length: 200 * 1024 },
          (_, i) => 'abcdefghijklmnopqrstuvwxyz0123456789'[i % 36],
        ).join(''),
      );
      const bin = Buffer.concat([
        Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
        Buffer.from('\nscript 5\nCRONIUM1 ready\n\0\0\r\n'),
      ]);
      const res = await runScript('bash', 'cat big.txt; cat bin.dat >&2; cat bin.dat', [
        { name: 'big.txt', data: big },
        { name: 'bin.dat', data: bin },
      ]);
      expect(res.code).toBe(0);
      expect(res.stdout.subarray(0, READY.length).toString()).toBe(READY);
      expect(res.stdout.subarray(READY.length).equals(Buffer.concat([big, bin]))).toBe(true);
      expect(res.stderr.equals(bin)).toBe(true);
    });

    it('runs a script whose body is binary-ish and has no trailing newline', async () => {
      const res = await runScript('bash', Buffer.from("printf '\\001\\377'"));
      expect(res.stdout.subarray(READY.length)).toEqual(Buffer.from([1, 255]));
    });
  });
});
