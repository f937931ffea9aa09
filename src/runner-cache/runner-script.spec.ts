/**
 * Runs remote/runner.sh locally (no ssh) under `sh`, speaking the protocol of
 * docs/runner-protocol.md (v2) on its stdin, the way the service does over an exec channel.
 *
 * RUNNER_TEST_SHELL="busybox sh" runs the runner under busybox ash, with busybox's `tail`
 * (no --pid: the polling follower) first on its PATH.
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
/** A `run` runner's standby word (its setup done, waiting for the payload). */
const STANDBY = `CRONIUM2 standby ${VERSION}\n`;
const READY = `${STANDBY}CRONIUM2 ready ${VERSION} ${UNAME_S} ${UNAME_M}\n`;
const ATTACHED = `CRONIUM2 attached ${VERSION} ${UNAME_S} ${UNAME_M}\n`;
/** The remote command line is `sh runner.sh ...`; RUNNER_TEST_SHELL="busybox sh" tries another sh. */
const SHELL = (process.env.RUNNER_TEST_SHELL ?? 'sh').split(' ');
const BUSYBOX = SHELL[0] === 'busybox';
/** busybox tail polls once a second and is stopped ~1.5 s after .status appears. */
const END_SLACK = BUSYBOX ? 3000 : 0;

jest.setTimeout(30000);

// ---------------------------------------------------------------- protocol helpers

interface Section {
  name: string;
  data: string | Buffer;
  /** Sent as a `text` section (its last line ends in a newline on the wire, counted or not). */
  text?: boolean;
}

/** `export NAME='value'` lines, `'` written as `'\''` (protocol doc, `env` section). */
function envSection(vars: Record<string, string>): Section {
  const lines = Object.entries(vars).map(([k, v]) => `export ${k}='${v.replace(/'/g, `'\\''`)}'\n`);
  return { name: 'env', data: lines.join('') };
}

interface Limits {
  grace?: number | string;
  timeout?: number | string;
  lease?: number | string;
}

/** Header line + `<name> <byteLength>\n<bytes>` sections. */
function frame(runId: string, type: string, limits: Limits, sections: Section[]): Buffer {
  const { grace = 1, timeout = 60, lease = 30 } = limits;
  const header = `CRONIUM2 ${runId} ${type} ${grace} ${timeout} ${lease} ${sections.length}\n`;
  const parts: Buffer[] = [Buffer.from(header)];
  for (const s of sections) {
    const data = Buffer.isBuffer(s.data) ? s.data : Buffer.from(s.data, 'utf8');
    if (!s.text) parts.push(Buffer.from(`${s.name} ${data.length}\n`), data);
    else {
      parts.push(Buffer.from(`${s.name} ${data.length} text\n`), data);
      if (data[data.length - 1] !== 0x0a) parts.push(Buffer.from('\n'));
    }
  }
  return Buffer.concat(parts);
}

/** `\nCRONIUM2 exit <code> <reason>\n` at the very end of a follower's stdout. */
const TRAILER = /\nCRONIUM2 exit (\d+) (\w+)(?: ([A-Za-z0-9+/]*=*))?\n$/;

/** The trailer at the end of `out` (bundled results make it long), as latin1 from its start. */
function trailerOf(out: Buffer): RegExpExecArray | null {
  const at = out.lastIndexOf('\nCRONIUM2 exit ');
  return at === -1 ? null : TRAILER.exec(out.subarray(at).toString('latin1'));
}

interface Result {
  /** The script's stdout between the ready/attached line and the trailer. */
  body: Buffer;
  stderr: Buffer;
  /** From the trailer; null when there was none. */
  code: number | null;
  reason: string | null;
  /** Bundled mode: the collect answer the trailer carried. */
  collected: Buffer | null;
}

/** Splits a follower's stdout into first line, script output and trailer. */
function parse(stdout: Buffer, stderr: Buffer, first: string): Result {
  expect(stdout.subarray(0, first.length).toString()).toBe(first);
  const rest = stdout.subarray(first.length);
  const m = trailerOf(rest);
  if (!m) return { body: rest, stderr, code: null, reason: null, collected: null };
  return {
    body: rest.subarray(0, rest.length - m[0].length),
    stderr,
    code: Number(m[1]),
    reason: m[2],
    collected: m[3] === undefined ? null : Buffer.from(m[3], 'base64'),
  };
}

interface Exit {
  /** The channel's exit status (not the script's: that is in the trailer). */
  status: number | null;
  signal: NodeJS.Signals | null;
  ms: number;
  stdout: Buffer;
  stderr: Buffer;
}

class Runner {
  readonly child: ChildProcessWithoutNullStreams;
  readonly done: Promise<Exit>;
  readonly t0 = Date.now();
  private out: Buffer[] = [];
  private err: Buffer[] = [];

  /** detached: the runner leads its own process group, as an sshd session would. */
  constructor(args: string[], input: Buffer, endStdin: boolean, detached = false) {
    this.child = spawn(SHELL[0], [...SHELL.slice(1), runnerPath, ...args], {
      stdio: 'pipe',
      env: runnerEnv,
      detached,
    });
    this.child.stdin.on('error', () => undefined); // EPIPE once the runner is gone
    this.child.stdout.on('data', (b: Buffer) => this.out.push(b));
    this.child.stderr.on('data', (b: Buffer) => this.err.push(b));
    // 'close' (not 'exit'): also waits until every holder of stdout/stderr is gone.
    this.done = new Promise((resolve) => {
      this.child.on('close', (status, signal) => {
        this.child.stdin.destroy();
        resolve({
          status,
          signal,
          ms: Date.now() - this.t0,
          stdout: this.stdout,
          stderr: this.stderr,
        });
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

  /** Wait for the channel to close; kill the runner (by pid) and fail if it takes too long. */
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

  async waitForTrailer(timeoutMs = 10000): Promise<void> {
    await waitUntil(
      () => trailerOf(this.stdout) !== null,
      timeoutMs + END_SLACK,
      'the exit trailer',
    );
  }

  /** Trailer, then `ack` (the run dir goes), then the channel closes. */
  async complete(first: string, timeoutMs = 10000): Promise<Result & { exit: Exit }> {
    await this.waitForTrailer(timeoutMs);
    this.send('ack\n');
    const exit = await this.finish(5000);
    return { ...parse(exit.stdout, exit.stderr, first), exit };
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
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie still answers kill -0; it is gone for our purposes.
  try {
    return !/^\d+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- fixture

let base: string;
let runnerPath: string;
let runnerEnv: NodeJS.ProcessEnv;
let runSeq = 0;
const started: number[] = []; // markers started by tests, cleaned up by pid afterwards

beforeAll(() => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-runner-'));
  const rd = path.join(base, 'runners', 'f4ce0000deadbeef');
  fs.cpSync(REMOTE_DIR, rd, { recursive: true });
  runnerPath = path.join(rd, 'runner.sh');
  runnerEnv = { ...process.env };
  if (BUSYBOX) {
    const bin = path.join(base, 'busybox-bin');
    fs.mkdirSync(bin);
    fs.symlinkSync(
      execFileSync('sh', ['-c', 'command -v busybox']).toString().trim(),
      path.join(bin, 'tail'),
    );
    runnerEnv.PATH = `${bin}:${process.env.PATH}`;
  }
});

afterAll(async () => {
  for (const pid of survivors(started)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  // Lingering tickers notice their run dir is gone within a second and exit.
  fs.rmSync(base, { recursive: true, force: true });
});

function newRunId(): string {
  return `run-${process.pid}-${++runSeq}`;
}
const runDir = (runId: string) => path.join(base, 'runs', runId);
const runFile = (runId: string, name: string) => path.join(runDir(runId), name);
const readRunFile = (runId: string, name: string) => fs.readFileSync(runFile(runId, name), 'utf8');
const runDirGone = (runId: string, timeoutMs = 3000) =>
  waitUntil(() => !fs.existsSync(runDir(runId)), timeoutMs, `run dir ${runId} removed`);
const statusWritten = (runId: string, timeoutMs = 6000) =>
  waitUntil(() => fs.existsSync(runFile(runId, '.status')), timeoutMs, `${runId}/.status`);

function start(
  runId: string,
  type: ScriptType | string,
  sections: Section[],
  opts: Limits & { endStdin?: boolean; detached?: boolean } = {},
): Runner {
  return new Runner(
    ['run'],
    frame(runId, type, opts, sections),
    opts.endStdin ?? false,
    opts.detached,
  );
}

function attach(runId: string, outOffset: number | string, errOffset: number | string): Runner {
  return new Runner(
    ['attach', runId, String(outOffset), String(errOffset)],
    Buffer.alloc(0),
    false,
  );
}

/** Run to completion: trailer, ack, channel closed. */
async function runScript(
  type: ScriptType,
  script: string | Buffer,
  extra: Section[] = [],
  limits: Limits = {},
): Promise<Result & { runId: string; exit: Exit }> {
  const runId = newRunId();
  const r = start(runId, type, [...extra, { name: 'script', data: script }], limits);
  const res = await r.complete(READY);
  return { ...res, runId };
}

// ---------------------------------------------------------------- tests

describe('runner.sh', () => {
  it('is valid POSIX sh and embeds the VERSION file', () => {
    const file = path.join(REMOTE_DIR, 'runner.sh');
    expect(spawnSync('sh', ['-n', file]).status).toBe(0);
    const src = fs.readFileSync(file, 'utf8');
    expect(src).toMatch(new RegExp(`^cr_version=${VERSION.replace(/\./g, '\\.')} `, 'm'));
    expect(VERSION).toBe('2.1.4');
    const cb = spawnSync('checkbashisms', [file]);
    // The one deliberate exception: RLIMIT_NPROC has no POSIX spelling, so prestart tries
    // bash/ash's `ulimit -u`, then dash's `-p`, both silenced (checkbashisms flags any ulimit).
    const report = (cb.stdout?.toString() ?? '') + (cb.stderr?.toString() ?? '');
    const flagged = report
      .split(/\n(?=possible bashism)/)
      .filter(
        (s) =>
          s.trim() && !/\(ulimit\):\s+ulimit -u "\$cr_np" 2>\/dev\/null \|\| ulimit -p/.test(s),
      );
    if (!cb.error) expect(flagged).toEqual([]);
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
      expect(res.body.toString()).toBe('out  line\nno-newline');
      expect([res.code, res.reason]).toEqual([code, 'exit']);
      expect(res.exit.status).toBe(0); // the trailer carries the code, not the channel
      expect(fs.existsSync(runDir(res.runId))).toBe(false); // ack removed it
    });
  });

  describe('text sections (read by builtins)', () => {
    const tricky = [
      'echo ok',
      'echo ok\n',
      '  lead\\ing \\n back\\slash\r\n\ttab  \n\nlast',
      'é ünïcode ☃\n',
      '\n\n',
      '\n',
      'x',
    ];
    it.each(tricky.map((t) => [JSON.stringify(t), t]))(
      'writes %s byte for byte',
      async (_n, text) => {
        const res = await runScript('bash', 'cat data.txt', [
          { name: 'data.txt', data: text, text: true },
        ]);
        expect(res.body.toString()).toBe(text);
        expect(res.code).toBe(0);
      },
    );

    it('a text script and env run as the same bytes sent raw would', async () => {
      const script = 'echo "$A"; printf "%s" "$B"';
      const env = envSection({ A: "it's", B: 'two\nlines' });
      const runId = newRunId();
      const r = start(runId, 'bash', [
        { ...env, text: true },
        { name: 'script', data: script, text: true },
      ]);
      const t = await r.complete(READY);
      expect(t.body.toString()).toBe("it's\ntwo\nlines");
    });

    it('a text env that sets PATH skips the interpreter check, as a raw one does', async () => {
      const runId = newRunId();
      const r = start(runId, 'bash', [
        { ...envSection({ PATH: `/nonexistent:${process.env.PATH}` }), text: true },
        { name: 'script', data: 'echo ran', text: true },
      ]);
      const t = await r.complete(READY);
      expect(t.body.toString()).toBe('ran\n');
    });

    it('refuses a text section whose lines run past its length, or input that ends inside it', async () => {
      const runId = newRunId();
      const header = `CRONIUM2 ${runId} bash 1 60 30 1\n`;
      let r = new Runner(['run'], Buffer.from(`${header}script 3 text\necho ok\n`), true);
      let res = await r.finish();
      expect(res.stdout.toString()).toMatch(/CRONIUM2 error bad section length\n$/);
      expect(res.status).toBe(70);
      expect(fs.existsSync(runDir(runId))).toBe(false);
      r = new Runner(['run'], Buffer.from(`${header}script 30 text\necho ok\n`), true);
      res = await r.finish();
      expect(res.stdout.toString()).toMatch(/CRONIUM2 error unexpected end of input\n$/);
      r = new Runner(['run'], Buffer.from(`${header}script 7 texts\necho ok\n`), true);
      res = await r.finish();
      expect(res.stdout.toString()).toMatch(/CRONIUM2 error bad section header\n$/);
    });
  });

  it('ends the output with exactly one newline and the trailer', async () => {
    const res = await runScript('bash', 'echo a; echo; exit 9');
    expect(res.exit.stdout.toString()).toBe(`${READY}a\n\n\nCRONIUM2 exit 9 exit\n`);
    expect(res.body.toString()).toBe('a\n\n');
    const empty = await runScript('bash', 'true');
    expect(empty.exit.stdout.toString()).toBe(`${READY}\nCRONIUM2 exit 0 exit\n`);
  });

  it('ignores an ack before the trailer: script output that looks like one is not the end', async () => {
    const runId = newRunId();
    const fake = '\nCRONIUM2 exit 0 exit\n';
    const r = start(runId, 'bash', [
      {
        name: 'script',
        data: `printf '${fake.replace(/\n/g, '\\n')}'; sleep 1; echo real; exit 3`,
      },
    ]);
    await r.waitForTrailer(); // the fake one
    r.send('ack\n'); // as a service would, taking it for the trailer
    await r.waitForStdout('real\n');
    expect(fs.existsSync(runDir(runId))).toBe(true);
    const res = await r.complete(READY);
    expect([res.body.toString(), res.code, res.reason]).toEqual([`${fake}real\n`, 3, 'exit']);
    expect(fs.existsSync(runDir(runId))).toBe(false);
  });

  it('announces ready with version, os and arch on the first line, cached in host-info', async () => {
    const res = await runScript('bash', 'echo ok');
    expect(res.exit.stdout.toString()).toBe(
      `CRONIUM2 standby ${VERSION}\nCRONIUM2 ready ${VERSION} ${UNAME_S} ${UNAME_M}\nok\n\nCRONIUM2 exit 0 exit\n`,
    );
    const hostInfo = path.join(path.dirname(runnerPath), 'host-info');
    expect(fs.readFileSync(hostInfo, 'utf8')).toBe(
      `${UNAME_S} ${UNAME_M} ${BUSYBOX ? 'poll' : 'pid'}\n`,
    );
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
    expect(res.body.toString('utf8').split('\0').slice(0, -1)).toEqual(names.map((n) => vars[n]));

    const node = `process.stdout.write(JSON.stringify(${JSON.stringify(names)}.map((n) => process.env[n])))`;
    const res2 = await runScript('node', node, [envSection(vars)]);
    expect(res2.code).toBe(0);
    expect(JSON.parse(res2.body.toString('utf8'))).toEqual(names.map((n) => vars[n]));
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
    expect(res.body.toString()).toBe(
      `mytool-ran\n${rd}/helpers/bash-env.sh|/custom/work|${runDir(res.runId)}|not-the-runner\nstdin-empty\n`,
    );

    const py = await runScript(
      'python',
      'import os, sys, cronium\nprint(os.environ["PYTHONPATH"]); print(os.environ["CRONIUM_WORK_DIR"]); print(os.getcwd())',
      [envSection({ PYTHONPATH: '/user/py' })],
    );
    expect(py.stderr.toString()).toBe('');
    expect(py.body.toString()).toBe(
      `${rd}/helpers:/user/py\n${runDir(py.runId)}\n${runDir(py.runId)}\n`,
    );

    const js = await runScript('node', 'require("cronium"); console.log(process.env.NODE_PATH)');
    expect(js.stderr.toString()).toBe('');
    expect(js.body.toString()).toBe(`${rd}/helpers\n`);
  });

  it('runs the script with default HUP, although its supervisor ignores HUP', async () => {
    const res = await runScript('bash', 'trap "echo got-hup; exit 4" HUP\nkill -HUP $$\nsleep 1');
    expect([res.code, res.body.toString()]).toEqual([4, 'got-hup\n']);
  });

  it('reports a missing interpreter as the script failing with 127', async () => {
    const res = await runScript('bash', 'echo never', [envSection({ PATH: '/nonexistent' })]);
    expect(res.code).toBe(127);
    expect(res.body.toString()).toBe('');
    expect(res.stderr.toString()).toMatch(/bash/);
  });

  it('reports 143 when a bash script kills itself with TERM', async () => {
    const res = await runScript('bash', 'echo before\nkill -TERM $$\necho after');
    expect([res.code, res.reason]).toEqual([143, 'exit']);
    expect(res.body.toString()).toBe('before\n');
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
      expectReason: string,
    ) {
      const m = markers(4);
      started.push(...m);
      const runId = newRunId();
      const r = start(runId, 'bash', [{ name: 'script', data: script(m) }], { grace });
      await r.waitForStdout('started');
      await waitUntil(() => survivors(m).length === 4, 5000, 'all sleeps to start');
      const t0 = Date.now();
      trigger(r);
      const deadline = (grace + 1) * 1000 + END_SLACK;
      await r.waitForTrailer(deadline + 2000);
      expect(Date.now() - t0).toBeLessThan(deadline);
      expect(survivors(m)).toEqual([]);
      const res = await r.complete(READY);
      expect([res.code, res.reason]).toEqual([expectCode, expectReason]);
      expect(res.body.toString()).toBe('started\n');
      expect(res.stderr.toString()).toBe(''); // no "Terminated" from the runner's shells
      expect(fs.existsSync(runDir(runId))).toBe(false);
    }

    it('kills the whole tree on cancel', async () => {
      await expectKilled((r) => r.send('cancel\n'), treeScript, 2, 143, 'cancel');
    });

    it('kills the whole tree on timeout, ignoring unknown control lines', async () => {
      const words = 'hello\n\nbogus words\nhb\ntimeout\ncancel\n';
      await expectKilled((r) => r.send(words), treeScript, 2, 143, 'timeout');
    });

    // What leaves the process group and session: setsid (forking and not), a double
    // fork into a new session, nohup + setsid. Found by the CRONIUM_RUN_ID mark.
    const escapes = (m: number[]) =>
      `setsid -f sleep ${m[0]}
( setsid sleep ${m[1]} & )
` +
      `nohup setsid sh -c 'sleep ${m[2]}' >/dev/null 2>&1 &
` +
      `echo started
sleep ${m[3]}
echo not-reached
`;

    it('kills what left the process group and session, on cancel', async () => {
      await expectKilled((r) => r.send('cancel\n'), escapes, 2, 143, 'cancel');
    });

    it('kills what left the process group and session when the script just ends', async () => {
      const m = markers(3);
      started.push(...m);
      const res = await runScript(
        'bash',
        `setsid -f sleep ${m[0]}
( setsid sleep ${m[1]} & )
setsid sh -c 'sleep ${m[2]}' &
` +
          `sleep 0.3
echo done
`,
      );
      expect([res.code, res.reason]).toEqual([0, 'exit']);
      expect(res.body.toString()).toBe('done\n');
      expect(survivors(m)).toEqual([]);
    });

    it('a run acked before its first tick: the ticker exits without a sweep of every process', async () => {
      // Marked like the run but made before its go line, so not the run's (the sweep reads
      // only what was made since). A ticker that took the acked run's missing dir for one
      // removed under a running script swept every environ on the host and killed this.
      const m = markers(1);
      started.push(...m);
      const runId = newRunId();
      const decoy = spawn('sleep', [String(m[0])], {
        env: { ...process.env, CRONIUM_RUN_ID: runId },
        stdio: 'ignore',
        detached: true,
      });
      decoy.unref();
      await waitUntil(() => survivors(m).length === 1, 5000, 'the decoy to start');
      const res = await start(runId, 'bash', [{ name: 'script', data: 'echo short' }]).complete(
        READY,
      );
      expect([res.code, res.body.toString()]).toEqual([0, 'short\n']);
      expect(fs.existsSync(runDir(runId))).toBe(false); // acked: gone before the first tick
      await new Promise((r) => setTimeout(r, 2500)); // the ticker wakes once a second
      expect(survivors(m)).toHaveLength(1);
    });

    it('leaves processes of other runs alone, even one whose id extends this one', async () => {
      const m = markers(1);
      started.push(...m);
      const mine = newRunId();
      const other = start(`${mine}0`, 'bash', [
        {
          name: 'script',
          data: `setsid -f sleep ${m[0]}
echo started
sleep 30
`,
        },
      ]);
      await other.waitForStdout('started');
      await waitUntil(() => survivors(m).length === 1, 5000, 'the other run to start');
      const res = await start(mine, 'bash', [{ name: 'script', data: 'echo mine' }]).complete(
        READY,
      );
      expect(res.code).toBe(0);
      expect(survivors(m)).toHaveLength(1);
      other.send('cancel\n');
      await other.complete(READY, 5000);
      expect(survivors(m)).toEqual([]);
    });

    it('escalates to KILL after graceSeconds when TERM is ignored', async () => {
      const stubborn = (m: number[]) => `trap '' TERM\n${treeScript(m)}`;
      await expectKilled((r) => r.send('cancel\n'), stubborn, 1, 137, 'cancel');
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
      const res = await r.complete(READY, 3000);
      expect([res.code, res.reason]).toEqual([143, 'cancel']);
      expect(res.stderr.toString()).toBe('');
      expect(survivors(m)).toEqual([]);
    });

    it('reports promptly with the script code when it leaves background children', async () => {
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
      await r.waitForTrailer(3000);
      expect(Date.now() - r.t0).toBeLessThan(2000 + END_SLACK); // TERM kills them: no grace wait
      expect(survivors(m)).toEqual([]);
      const res = await r.complete(READY);
      expect([res.code, res.reason]).toEqual([5, 'exit']);
      expect(res.body.toString()).toBe('bye\n');
    });

    it('kills a script cancelled right after ready, before it could start', async () => {
      const m = markers(1);
      started.push(...m);
      const runId = newRunId();
      const input = Buffer.concat([
        frame(runId, 'bash', {}, [{ name: 'script', data: `sleep ${m[0]}` }]),
        Buffer.from('cancel\n'),
      ]);
      const r = new Runner(['run'], input, false);
      const res = await r.complete(READY, 3000);
      expect([res.code, res.reason]).toEqual([143, 'cancel']);
      expect(survivors(m)).toEqual([]);
    });
  });

  describe('the script outlives its follower', () => {
    /** Prints `out i` / `err i` 40 times over ~2 s, then exits 7. */
    const chatty =
      'i=0; while [ $i -lt 40 ]; do i=$((i+1)); echo "out $i"; echo "err $i" >&2; sleep 0.05; done; exit 7';
    const all = (s: string) => Array.from({ length: 40 }, (_, i) => `${s} ${i + 1}\n`).join('');

    async function resumeAfter(
      stop: (r: Runner, runId: string) => Promise<Exit>,
      detached = false,
    ) {
      const runId = newRunId();
      const r = start(runId, 'bash', [{ name: 'script', data: chatty }], { detached });
      await r.waitForStdout('out 5\n');
      const first = await stop(r, runId);
      const before = parse(first.stdout, first.stderr, READY);
      expect(before.code).toBeNull(); // no trailer: the follower was stopped
      expect(fs.existsSync(runDir(runId))).toBe(true);
      expect(readRunFile(runId, '.pid')).toMatch(/^\d+\n$/);
      expect(isAlive(Number(readRunFile(runId, '.pid')))).toBe(true); // still running

      const a = attach(runId, before.body.length, before.stderr.length);
      const after = await a.complete(ATTACHED);
      expect(Buffer.concat([before.body, after.body]).toString()).toBe(all('out'));
      expect(Buffer.concat([before.stderr, after.stderr]).toString()).toBe(all('err'));
      expect(after.body.length).toBeGreaterThan(0); // some of it did come from the attach
      expect([after.code, after.reason]).toEqual([7, 'exit']);
      expect(fs.existsSync(runDir(runId))).toBe(false);
    }

    it('resumes with no gap and no duplicate after the follower saw EOF', async () => {
      await resumeAfter(async (r) => {
        r.closeStdin();
        const exit = await r.finish(2000); // promptly, and nothing holds the pipes
        expect(exit.status).toBe(0);
        return exit;
      });
    });

    it('resumes with no gap and no duplicate after the follower was SIGKILLed', async () => {
      await resumeAfter(async (r, runId) => {
        // Kill the follower and its tails and control reader at once, as a dead connection
        // would; the supervisor (also its child) must survive.
        const superPid = Number(readRunFile(runId, '.super'));
        const kids = spawnSync('pgrep', ['-P', String(r.child.pid)])
          .stdout.toString()
          .split('\n')
          .filter(Boolean)
          .map(Number)
          .filter((p) => p !== superPid);
        r.child.kill('SIGKILL');
        for (const p of kids) process.kill(p, 'SIGKILL');
        const exit = await r.finish(2000);
        expect(isAlive(superPid)).toBe(true);
        return exit;
      });
    });

    it.each(['SIGTERM', 'SIGHUP'] as const)(
      "resumes after %s to the follower's whole process group (pty hangup, timeout)",
      async (sig) => {
        await resumeAfter(async (r, runId) => {
          const superPid = Number(readRunFile(runId, '.super'));
          process.kill(-r.child.pid!, sig);
          const exit = await r.finish(2000);
          expect(exit.status).toBe(sig === 'SIGTERM' ? 143 : 129);
          expect(isAlive(superPid)).toBe(true);
          return exit;
        }, true);
      },
    );

    it('attach to a finished run copies the remainder and the trailer; ack removes the run dir', async () => {
      const runId = newRunId();
      const r = start(runId, 'bash', [
        { name: 'script', data: 'sleep 0.3; printf "0123456789"; printf "abcdef" >&2; exit 3' },
      ]);
      await r.waitForStdout(READY);
      r.closeStdin();
      await r.finish(2000);
      await statusWritten(runId);
      expect(readRunFile(runId, '.status')).toBe('3 exit\n');

      // Without ack the run dir stays: the next attach still finds it.
      const a1 = attach(runId, 4, 2);
      await a1.waitForTrailer();
      a1.closeStdin();
      const e1 = await a1.finish(2000);
      const r1 = parse(e1.stdout, e1.stderr, ATTACHED);
      expect([r1.body.toString(), r1.stderr.toString(), r1.code, r1.reason]).toEqual([
        '456789',
        'cdef',
        3,
        'exit',
      ]);
      expect(fs.existsSync(runDir(runId))).toBe(true);

      const r2 = await attach(runId, 10, 6).complete(ATTACHED);
      expect([r2.body.length, r2.stderr.length, r2.code]).toEqual([0, 0, 3]);
      expect(fs.existsSync(runDir(runId))).toBe(false);
    });

    it('with a keep section the trailer carries the results and ack removes the run dir', async () => {
      const runId = newRunId();
      const r = start(runId, 'bash', [
        { name: 'keep', data: '' },
        { name: 'script', data: 'mkdir out && echo hi > out/x && echo done' },
      ]);
      const res = await r.complete(READY);
      expect([res.code, res.body.toString()]).toEqual([0, 'done\n']);
      expect(res.collected?.toString()).toBe('CRONIUM2 collect 1\nx 3\nhi\n');
      expect(fs.existsSync(runDir(runId))).toBe(false);
    });

    it('results too big for the trailer: a plain trailer, ack leaves the run dir for collect', async () => {
      const runId = newRunId();
      const r = start(runId, 'bash', [
        { name: 'keep', data: '' },
        { name: 'script', data: 'mkdir out && head -c 1100000 /dev/zero > out/x && echo done' },
      ]);
      const res = await r.complete(READY);
      expect([res.code, res.body.toString(), res.collected]).toEqual([0, 'done\n', null]);
      expect(fs.existsSync(path.join(runDir(runId), 'out', 'x'))).toBe(true);
      expect(fs.existsSync(path.join(runDir(runId), '.collect'))).toBe(false);
      const c = await new Runner(['collect', runId], Buffer.alloc(0), true).finish();
      expect(c.stdout.length).toBe('CRONIUM2 collect 1\nx 1100000\n'.length + 1100000);
      expect(fs.existsSync(runDir(runId))).toBe(false);
    });

    it('attach follows a running script live, then cancel kills it', async () => {
      const m = markers(2);
      started.push(...m);
      const runId = newRunId();
      const r = start(runId, 'bash', [
        { name: 'script', data: `sleep ${m[0]} &\necho started\nsleep ${m[1]}\n` },
      ]);
      await r.waitForStdout('started');
      r.closeStdin();
      await r.finish(2000);
      const a = attach(runId, 0, 0);
      await a.waitForStdout('started');
      expect(a.stdout.toString()).toBe(`${ATTACHED}started\n`);
      await waitUntil(() => survivors(m).length === 2, 5000, 'sleeps to start');
      a.send('hb\ncancel\n');
      const res = await a.complete(ATTACHED, 3000);
      expect([res.code, res.reason]).toEqual([143, 'cancel']);
      expect(survivors(m)).toEqual([]);
    });

    it('an offset past the end of a spool delivers nothing from it', async () => {
      const runId = newRunId();
      const r = start(runId, 'bash', [
        { name: 'script', data: 'echo a; sleep 0.5; echo b; echo e >&2; sleep 0.5; echo c' },
      ]);
      await r.waitForStdout('a\n');
      r.closeStdin();
      await r.finish(2000);
      const res = await attach(runId, 1000, 0).complete(ATTACHED);
      expect([res.body.toString(), res.stderr.toString(), res.code]).toEqual(['', 'e\n', 0]);
    });

    it('attach with both offsets past the end still waits for the end and the trailer', async () => {
      const runId = newRunId();
      const r = start(runId, 'bash', [{ name: 'script', data: 'echo a; sleep 1; exit 6' }]);
      await r.waitForStdout('a\n');
      r.closeStdin();
      await r.finish(2000);
      const res = await attach(runId, 5, 5).complete(ATTACHED);
      expect([res.body.toString(), res.stderr.toString(), res.code]).toEqual(['', '', 6]);
    });

    it('refuses to attach to an unknown run, and to a dead one without status', async () => {
      const res = await new Runner(
        ['attach', 'no-such-run', '0', '0'],
        Buffer.alloc(0),
        true,
      ).finish();
      expect([res.stdout.toString(), res.status]).toEqual([
        'CRONIUM2 error unknown run no-such-run\n',
        70,
      ]);

      // A run dir whose supervisor died without writing .status (kill -9): unknown too, and
      // nothing is removed.
      const runId = newRunId();
      fs.mkdirSync(runDir(runId), { recursive: true });
      const dead = spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim();
      fs.writeFileSync(runFile(runId, '.super'), `${dead}\n`);
      fs.writeFileSync(runFile(runId, 'precious'), 'x');
      const res2 = await new Runner(['attach', runId, '0', '0'], Buffer.alloc(0), true).finish();
      expect([res2.stdout.toString(), res2.status]).toEqual([
        `CRONIUM2 error unknown run ${runId}\n`,
        70,
      ]);
      expect(readRunFile(runId, 'precious')).toBe('x');
      fs.rmSync(runDir(runId), { recursive: true });

      for (const args of [
        ['../x', '0', '0'],
        ['ok', '-1', '0'],
        ['ok', '0', '01'],
        ['ok', '0'],
      ]) {
        const bad = await new Runner(['attach', ...args], Buffer.alloc(0), true).finish();
        expect(bad.stdout.toString()).toMatch(/^CRONIUM2 error [^\n]+\n$/);
        expect(bad.status).toBe(70);
      }
    });
  });

  describe('lease and deadline', () => {
    const tree = (m: number[]) => `sleep ${m[0]} &\necho started\nsleep ${m[1]}\n`;

    /** Starts a two-sleep tree, closes the follower right after ready. */
    async function unattended(limits: Limits) {
      const m = markers(2);
      started.push(...m);
      const runId = newRunId();
      const r = start(runId, 'bash', [{ name: 'script', data: tree(m) }], limits);
      await r.waitForStdout(READY);
      const t0 = r.t0;
      r.closeStdin();
      await r.finish(2000);
      await waitUntil(() => survivors(m).length === 2, 5000, 'sleeps to start');
      const pid = Number(readRunFile(runId, '.pid'));
      expect(isAlive(pid)).toBe(true);
      return { m, runId, t0, pid };
    }

    it('kills the tree when nobody heartbeats for a lease, then the linger removes the run dir', async () => {
      const { m, runId, t0, pid } = await unattended({ lease: 2, timeout: 60 });
      await statusWritten(runId);
      const ms = Date.now() - t0;
      expect(ms).toBeGreaterThanOrEqual(1900);
      expect(ms).toBeLessThan(4500);
      expect(readRunFile(runId, '.status')).toBe('143 lease\n');
      expect(readRunFile(runId, '.control')).toBe('lease\n');
      expect(isAlive(pid)).toBe(false);
      expect(survivors(m)).toEqual([]);
      // Nobody collects: removed after one more lease without a heartbeat.
      await runDirGone(runId, 5000);
    });

    it('enforces the absolute deadline with nobody attached', async () => {
      const { m, runId, t0, pid } = await unattended({ lease: 60, timeout: 2 });
      await statusWritten(runId);
      const ms = Date.now() - t0;
      expect(ms).toBeGreaterThanOrEqual(1900);
      expect(ms).toBeLessThan(4000);
      expect(readRunFile(runId, '.status')).toBe('143 timeout\n');
      expect(isAlive(pid)).toBe(false);
      expect(survivors(m)).toEqual([]);
      const res = await attach(runId, 0, 0).complete(ATTACHED);
      expect([res.body.toString(), res.code, res.reason]).toEqual(['started\n', 143, 'timeout']);
      expect(fs.existsSync(runDir(runId))).toBe(false);
    });

    it('hb words keep a run alive past the lease while attached', async () => {
      const runId = newRunId();
      const r = start(runId, 'bash', [{ name: 'script', data: 'sleep 3.5; echo done' }], {
        lease: 2,
      });
      const timer = setInterval(() => r.send('hb\n'), 400);
      try {
        const res = await r.complete(READY);
        expect([res.body.toString(), res.code, res.reason]).toEqual(['done\n', 0, 'exit']);
      } finally {
        clearInterval(timer);
      }
    });

    it('an attached follower that sends no hb does not hold the lease', async () => {
      const m = markers(1);
      started.push(...m);
      const runId = newRunId();
      const r = start(runId, 'bash', [{ name: 'script', data: `echo started; sleep ${m[0]}` }], {
        lease: 2,
      });
      const res = await r.complete(READY);
      expect([res.body.toString(), res.code, res.reason]).toEqual(['started\n', 143, 'lease']);
      expect(res.exit.ms).toBeLessThan(4500 + END_SLACK);
      expect(survivors(m)).toEqual([]);
    });
  });

  describe('setup errors', () => {
    const okScript: Section = { name: 'script', data: 'echo hi' };

    async function expectError(input: Buffer, runId?: string, args = ['run']) {
      const r = new Runner(args, input, true);
      const res = await r.finish();
      // `run` says its standby word first, unless it failed before its standby setup
      expect(res.stdout.toString()).toMatch(/^(CRONIUM2 standby \S+\n)?CRONIUM2 error [^\n]+\n$/);
      expect(res.status).toBe(70);
      if (runId) expect(fs.existsSync(runDir(runId))).toBe(false);
      return res;
    }

    it.each([
      ['runId with a slash', '../etc'],
      ['runId with a dot', 'a.b'],
      ['runId with unicode', 'runé'],
      ['runId of 65 chars', 'a'.repeat(65)],
    ])('rejects a %s', async (_what, runId) => {
      await expectError(frame(runId, 'bash', {}, [okScript]));
      expect(fs.readdirSync(path.join(base, 'runs')).filter((f) => !f.startsWith('run-'))).toEqual(
        [],
      );
    });

    it('leaves no standby dir behind when its channel is gone before it says standby', async () => {
      // The service may close a standby's channel while its login is still running (the
      // connection is full, or the runner was redeployed): the standby word then meets a
      // closed stdout. SIGPIPE must clean up like any other signal, not kill the runner
      // with its standby dir (and the parked processes' fifos) left in runs/.
      const child = spawn(SHELL[0], [...SHELL.slice(1), runnerPath, 'run'], {
        cwd: base,
        env: runnerEnv,
        stdio: ['pipe', 'pipe', 'ignore'],
      });
      child.stdout.destroy();
      const sb = path.join(base, 'runs', `.standby-${child.pid}`);
      const [code, signal] = await new Promise<[number | null, string | null]>((resolve) =>
        child.on('exit', (c, s) => resolve([c, s])),
      );
      child.stdin.destroy();
      expect({ code, signal, left: fs.existsSync(sb) }).toEqual({
        code: 141,
        signal: null,
        left: false,
      });
    });

    it('accepts a runId of 64 chars', async () => {
      const runId = 'A-9'.repeat(21) + 'z';
      const res = await start(runId, 'bash', [okScript]).complete(READY);
      expect([res.code, res.body.toString()]).toEqual([0, 'hi\n']);
    });

    it.each([
      ['uppercase', 'Script'],
      ['leading dot', '.env'],
      ['leading dot (runner file)', '.status'],
      ['slash', 'out/x'],
      ['dot-dot', 'a..b'],
      ['leading digit', '1abc'],
      ['space', 'a b'],
    ])('rejects a section name with %s', async (_what, name) => {
      const runId = newRunId();
      await expectError(frame(runId, 'bash', {}, [{ name, data: 'x' }, okScript]), runId);
    });

    it.each([
      ['non-numeric length', 'script abc\necho hi'],
      ['negative length', 'script -1\necho hi'],
      ['leading-zero length', 'script 07\necho hi'],
      ['missing length', 'script\necho hi'],
      ['extra field', 'script 7 8\necho hi'],
    ])('rejects a section header with %s', async (_what, body) => {
      const runId = newRunId();
      await expectError(Buffer.from(`CRONIUM2 ${runId} bash 1 60 30 1\n${body}`), runId);
    });

    it.each([
      ['v1 magic', (id: string) => `CRONIUM1 ${id} bash 1 1\n`],
      ['v1 magic with v2 fields', (id: string) => `CRONIUM1 ${id} bash 1 60 30 1\n`],
      ['bad script type', (id: string) => `CRONIUM2 ${id} ruby 1 60 30 1\n`],
      ['non-numeric grace', (id: string) => `CRONIUM2 ${id} bash x 60 30 1\n`],
      ['zero timeout', (id: string) => `CRONIUM2 ${id} bash 1 0 30 1\n`],
      ['non-numeric timeout', (id: string) => `CRONIUM2 ${id} bash 1 1m 30 1\n`],
      ['zero lease', (id: string) => `CRONIUM2 ${id} bash 1 60 0 1\n`],
      ['leading-zero lease', (id: string) => `CRONIUM2 ${id} bash 1 60 030 1\n`],
      ['missing count', (id: string) => `CRONIUM2 ${id} bash 1 60 30\n`],
      ['extra field', (id: string) => `CRONIUM2 ${id} bash 1 60 30 1 1\n`],
      ['CRLF', (id: string) => `CRONIUM2 ${id} bash 1 60 30 1\r\n`],
      ['empty input', () => ''],
    ])('rejects a header with %s', async (_what, header) => {
      const runId = newRunId();
      await expectError(Buffer.from(header(runId) + 'script 7\necho hi'), runId);
    });

    it('names the bad header field', async () => {
      const id = newRunId();
      const msg = async (h: string) =>
        (await expectError(Buffer.from(h + 'script 7\necho hi'))).stdout.toString();
      expect(await msg(`CRONIUM2 ${id} bash 1 0 30 1\n`)).toBe(
        `${STANDBY}CRONIUM2 error bad timeoutSeconds\n`,
      );
      expect(await msg(`CRONIUM2 ${id} bash 1 60 0 1\n`)).toBe(
        `${STANDBY}CRONIUM2 error bad leaseSeconds\n`,
      );
    });

    it('rejects truncated input, a missing script section and duplicates', async () => {
      let runId = newRunId();
      await expectError(Buffer.from(`CRONIUM2 ${runId} bash 1 60 30 2\nscript 7\necho hi`), runId);
      runId = newRunId();
      await expectError(frame(runId, 'bash', {}, [{ name: 'input.json', data: '{}' }]), runId);
      runId = newRunId();
      await expectError(frame(runId, 'bash', {}, [okScript, okScript]), runId);
    });

    it('refuses an existing run dir without touching it', async () => {
      const runId = newRunId();
      fs.mkdirSync(runDir(runId), { recursive: true });
      fs.writeFileSync(path.join(runDir(runId), 'precious'), 'x');
      const res = await expectError(frame(runId, 'bash', {}, [okScript]));
      expect(res.stdout.toString()).toMatch(/exists/);
      expect(fs.readFileSync(path.join(runDir(runId), 'precious'), 'utf8')).toBe('x');
      fs.rmSync(runDir(runId), { recursive: true });
    });

    it.each([[[]], [['exec']], [['run', 'extra']], [['collect']], [['attach', 'x', '0']]])(
      'prints usage for argv %j',
      async (args) => {
        const res = await expectError(Buffer.alloc(0), undefined, args);
        expect(res.stdout.toString()).toBe('CRONIUM2 error usage\n');
      },
    );
  });

  describe('run dir and collect', () => {
    it('creates a private run dir holding the sections and the runner files', async () => {
      const res = await runScript(
        'bash',
        'stat -c "%a %n" . env script input.json .stdout .stderr .pid .super .grace; cat input.json',
        [envSection({ A: '1' }), { name: 'input.json', data: '{"a":1}' }],
        { grace: 3 },
      );
      expect(res.body.toString()).toBe(
        '700 .\n600 env\n600 script\n600 input.json\n600 .stdout\n600 .stderr\n600 .pid\n' +
          '600 .super\n600 .grace\n{"a":1}',
      );
      expect(fs.existsSync(runDir(res.runId))).toBe(false);
    });

    it('writes .status atomically with the reason, and .pid/.super as pids', async () => {
      const runId = newRunId();
      const r = start(runId, 'bash', [{ name: 'script', data: 'echo x; exit 12' }], { grace: 4 });
      await r.waitForTrailer();
      expect(readRunFile(runId, '.status')).toBe('12 exit\n');
      expect(readRunFile(runId, '.grace')).toBe('4\n');
      expect(readRunFile(runId, '.super')).toMatch(/^\d+\n$/);
      expect(readRunFile(runId, '.stdout')).toBe('x\n');
      expect(fs.existsSync(runFile(runId, '.status.tmp'))).toBe(false);
      expect(fs.existsSync(runFile(runId, '.control'))).toBe(false);
      r.send('ack\n');
      await r.finish();
      expect(fs.existsSync(runDir(runId))).toBe(false);
    });

    it('keeps the run dir with a keep section; collect prints out/ and removes it', async () => {
      const bin = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const runId = newRunId();
      const script =
        'mkdir out && printf \'{"ok":true}\' > out/result.json && : > out/empty ' +
        '&& cp blob out/bin.dat && mkdir out/subdir && : > out/.hidden && echo done';
      const res = await start(runId, 'bash', [
        { name: 'keep', data: '' },
        { name: 'blob', data: bin },
        { name: 'script', data: script },
      ]).complete(READY);
      expect(res.code).toBe(0);
      expect(res.body.toString()).toBe('done\n');
      const frame = Buffer.concat([
        Buffer.from('CRONIUM2 collect 3\nbin.dat 256\n'),
        bin,
        Buffer.from('empty 0\nresult.json 11\n{"ok":true}'),
      ]);
      // in the trailer, byte for byte; the run dir went with the ack
      expect(res.collected).toEqual(frame);
      expect(fs.existsSync(runDir(runId))).toBe(false);

      // the same answer from `collect`, for a run dir left behind (e.g. a lost ack)
      const kept = newRunId();
      const again = start(kept, 'bash', [
        { name: 'keep', data: '' },
        { name: 'blob', data: bin },
        { name: 'script', data: script },
      ]);
      await again.waitForTrailer();
      again.closeStdin();
      await again.finish();
      expect(fs.existsSync(path.join(runDir(kept), 'out', 'result.json'))).toBe(true);
      const c = await new Runner(['collect', kept], Buffer.alloc(0), true).finish();
      expect(c.status).toBe(0);
      expect(c.stderr.toString()).toBe('');
      expect(c.stdout).toEqual(frame);
      expect(fs.existsSync(runDir(kept))).toBe(false);
    });

    it('collect of a missing run dir prints an empty collection; bad runIds are refused', async () => {
      const c = await new Runner(['collect', 'nope-123'], Buffer.alloc(0), true).finish();
      expect(c.stdout.toString()).toBe('CRONIUM2 collect 0\n');
      expect(c.status).toBe(0);
      const bad = await new Runner(['collect', '../x'], Buffer.alloc(0), true).finish();
      expect(bad.stdout.toString()).toMatch(/^CRONIUM2 error /);
      expect(bad.status).toBe(70);
    });
  });

  describe('byte transparency', () => {
    const big = Buffer.from(
      Array.from(
        { length: 200 * 1024 },
        (_, i) => 'abcdefghijklmnopqrstuvwxyz0123456789'[i % 36],
      ).join(''),
    );
    const bin = Buffer.concat([
      Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
      Buffer.from('\nscript 5\nCRONIUM2 ready\n\nCRONIUM2 exit 0 exit\n\0\0\r\n'),
    ]);

    it('passes a 200 KB line without newline and binary bytes through unchanged', async () => {
      const res = await runScript('bash', 'cat big.txt; cat bin.dat >&2; cat bin.dat', [
        { name: 'big.txt', data: big },
        { name: 'bin.dat', data: bin },
      ]);
      expect(res.code).toBe(0);
      expect(res.body.equals(Buffer.concat([big, bin]))).toBe(true);
      expect(res.stderr.equals(bin)).toBe(true);
    });

    it('delivers everything written right before the exit (8 MB, both streams)', async () => {
      const res = await runScript(
        'bash',
        'head -c 8388608 /dev/zero | tr "\\0" x; head -c 3000000 /dev/zero | tr "\\0" y >&2; exit 2',
      );
      expect([res.code, res.body.length, res.stderr.length]).toEqual([2, 8388608, 3000000]);
      expect(res.body.every((b) => b === 0x78)).toBe(true);
    });

    it('attach from an offset inside binary output resumes byte-exactly', async () => {
      const runId = newRunId();
      const r = start(runId, 'bash', [
        { name: 'bin.dat', data: bin },
        { name: 'script', data: 'cat bin.dat; cat bin.dat >&2' },
      ]);
      await r.waitForTrailer();
      r.closeStdin();
      await r.finish();
      const res = await attach(runId, 100, 250).complete(ATTACHED);
      expect(res.body.equals(bin.subarray(100))).toBe(true);
      expect(res.stderr.equals(bin.subarray(250))).toBe(true);
    });

    it('runs a script whose body is binary-ish and has no trailing newline', async () => {
      const res = await runScript('bash', Buffer.from("printf '\\001\\377'"));
      expect(res.body).toEqual(Buffer.from([1, 255]));
    });
  });
});
