/**
 * The runner protocol (docs/runner-protocol.md): every byte the service and the remote
 * runner exchange, and the parsers for what the runner prints. Nothing here touches a
 * channel; `runner-session.ts` holds the conversation, `commands.ts` the command lines.
 */
import type { ScriptType } from '../executions/request';

/** The protocol word that starts every line the runner (or the deploy step) prints. */
export const PROTOCOL = 'CRONIUM2';

/** Single-quotes a string for a POSIX shell (`'` becomes `'\''`). */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

// ── the run payload (service → runner, on stdin) ─────────────────────────────────────

export interface RunPayloadInput {
  runId: string;
  scriptType: ScriptType;
  graceSeconds: number;
  /** The runner kills the tree this long after the start, attached or not. */
  timeoutSeconds: number;
  /** The runner kills the tree when nobody has been attached for this long. */
  leaseSeconds: number;
  env: Record<string, string>;
  script: string;
  /** Extra files for the helpers (input.json, context.json, …). */
  files?: Record<string, string | Buffer>;
  /** Keep the run directory after the script (bundled mode collects results from it). */
  keep?: boolean;
  /** `ulimit -u` for the script (0 or absent: none). */
  maxProcesses?: number;
  /** Run the script as another user through sudo (the password, if any, fed on stdin). */
  become?: { user: string; password?: string };
}

/** A POSIX user name, the only shape `become.user` may take (the runner checks it too). */
export const BECOME_USER_RE = /^[a-z_][a-z0-9_-]{0,31}$/;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The largest section sent as `text`: the runner reads a text section with the `read`
 * builtin, a byte per system call, which costs about what the fork and exec of `head -c`
 * cost at 1-2 KiB, and less below.
 */
export const TEXT_SECTION_MAX = 2048;

/**
 * One section on the wire: `<name> <length>\n<bytes>`, or for a small section with no NUL
 * byte `<name> <length> text\n<bytes>`, whose last line always ends in a newline on the
 * wire: one the length does not count when the bytes did not end in one.
 */
function frameSection(name: string, data: Buffer): Buffer[] {
  const text = data.length > 0 && data.length <= TEXT_SECTION_MAX && !data.includes(0);
  if (!text) return [Buffer.from(`${name} ${data.length}\n`), data];
  const open = data[data.length - 1] !== 0x0a;
  return [Buffer.from(`${name} ${data.length} text\n`), data, ...(open ? [NEWLINE] : [])];
}
const NEWLINE = Buffer.from('\n');
const SECTION_NAME = /^[a-z][a-z0-9_.-]*$/;

/**
 * Builds what the runner reads on stdin: a header line and length-prefixed sections
 * (small ones as `text`, see frameSection). Env values travel single-quoted in a file that
 * only the script's shell sources — never on a command line.
 */
export function buildRunPayload(p: RunPayloadInput): Buffer {
  const sections: [string, Buffer][] = [];
  const envLines = Object.entries(p.env).map(([k, v]) => {
    if (!ENV_NAME.test(k)) throw new Error(`bad env name ${k}`);
    if (v.includes('\0')) throw new Error(`env ${k} contains a NUL byte`);
    return `export ${k}=${shellQuote(v)}\n`;
  });
  sections.push(['env', Buffer.from(envLines.join(''), 'utf8')]);
  for (const [name, data] of Object.entries(p.files ?? {})) {
    if (!SECTION_NAME.test(name) || name.includes('..')) throw new Error(`bad section ${name}`);
    sections.push([name, Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8')]);
  }
  if (p.keep) sections.push(['keep', Buffer.alloc(0)]);
  if (p.become) {
    const { user, password } = p.become;
    if (!BECOME_USER_RE.test(user)) throw new Error('bad become user');
    if (password !== undefined && /[\0\r\n]/.test(password)) throw new Error('bad become password');
    // `<user>\n[<password>\n]`: read by the runner's builtins, emptied before sudo runs.
    sections.push(['become', Buffer.from(`${user}\n${password ? `${password}\n` : ''}`, 'utf8')]);
  }
  if (p.maxProcesses && Number.isSafeInteger(p.maxProcesses) && p.maxProcesses > 0) {
    sections.push(['nproc', Buffer.from(`${p.maxProcesses}\n`)]);
  }
  sections.push(['script', Buffer.from(p.script, 'utf8')]);
  const grace = Math.max(0, Math.ceil(p.graceSeconds));
  const timeout = Math.max(1, Math.ceil(p.timeoutSeconds));
  const lease = Math.max(1, Math.ceil(p.leaseSeconds));
  const parts: Buffer[] = [
    Buffer.from(
      `${PROTOCOL} ${p.runId} ${p.scriptType} ${grace} ${timeout} ${lease} ${sections.length}\n`,
    ),
  ];
  for (const [name, data] of sections) parts.push(...frameSection(name, data));
  return Buffer.concat(parts);
}

// ── the control stream (service → runner, on stdin after the payload) ────────────────

/**
 * Words the runner obeys on its control stream: `cancel` and `timeout` kill the script's
 * whole tree, `hb` renews the lease, `ack` says the trailer arrived (the run directory
 * may go).
 */
export type ControlWord = 'cancel' | 'timeout' | 'hb' | 'ack';

export function controlLine(word: ControlWord): string {
  return `${word}\n`;
}

// ── what the runner prints ───────────────────────────────────────────────────────────

/** The most stdout the runner may print before its first line. */
export const FIRST_LINE_MAX = 4096;

export interface ReadyLine {
  /** `ready`: a new run started; `attached`: following a run that was already there. */
  kind: 'ready' | 'attached';
  version: string;
  /** `<os> <arch>` as the runner reports them. */
  platform: string;
}

/**
 * `CRONIUM2 standby <version>`: a `run` runner has done everything that does not need the
 * payload (its standby setup) and waits for it. Its first line; nothing else is printed
 * before the payload.
 */
export function parseStandbyLine(line: string): string | null {
  return /^CRONIUM2 standby (\S+)$/.exec(line)?.[1] ?? null;
}

/** `CRONIUM2 ready|attached <version> <os> <arch>`: the spooled output follows. */
export function parseReadyLine(line: string): ReadyLine | null {
  const m = /^CRONIUM2 (ready|attached) (\S+) (.*)$/.exec(line);
  return m ? { kind: m[1] as ReadyLine['kind'], version: m[2], platform: m[3] } : null;
}

/** The message of a `CRONIUM2 error <message>` line anywhere in `text`, else null. */
export function parseErrorLine(text: string): string | null {
  return /^CRONIUM2 error (.*)$/m.exec(text)?.[1] ?? null;
}

/** `attach` found no such run: its directory is gone, or its supervisor died. */
export function isUnknownRun(error: string | null): boolean {
  return !!error && error.startsWith('unknown run');
}

/**
 * `runner missing: <path>`: a standby's runner found its files gone when the payload came
 * (a wiped base dir): redeploy, as for a runner the shell could not find.
 */
export function isRunnerGone(error: string | null): boolean {
  return /^runner missing: /.test(error ?? '');
}

/** `interpreter missing: <name>`: the script's interpreter is not on the server's PATH. */
export function missingInterpreter(error: string | null): string | null {
  return /^interpreter missing: (\S+)$/.exec(error ?? '')?.[1] ?? null;
}

/**
 * `tool missing: <name> (…)`: a tool the safety checks or the kill of the whole tree rely
 * on (`find`, `grep`) is not on the server's PATH; nothing was started, and retrying won't
 * help until it is installed.
 */
export function isToolMissing(error: string | null): boolean {
  return /^tool missing: /.test(error ?? '');
}

/** The base dir, or a path of ours under it, is owned or writable by someone else. */
export function isUnsafePath(error: string | null): boolean {
  return !!error && error.startsWith('unsafe path');
}

/**
 * Why the script ended, as the runner's trailer says; `become`: sudo refused to run it as
 * the job's `become.user` (it never started).
 */
export type EndReason = 'exit' | 'cancel' | 'timeout' | 'lease' | 'become';

export interface ExitTrailer {
  exitCode: number;
  reason: EndReason;
  /** Bundled mode: the `collect` answer, when it travelled in the trailer. */
  collected: Buffer | null;
}

/**
 * The follower's last stdout bytes: `\nCRONIUM2 exit <code> <reason>\n`, written after
 * the whole spool and just before it closes stdout, so only a trailer at the end of the
 * stream counts. The leading newline is the follower's: it ends a last line the script
 * left open, or stands alone after one that ended.
 */
const TRAILER_HEAD = 'CRONIUM2 exit ';
const TRAILER =
  /^\n?CRONIUM2 exit (\d{1,3}) (exit|cancel|timeout|lease|become)(?: ([A-Za-z0-9+/]*=*))?\n$/;
/**
 * The largest `collect` answer the runner puts in its trailer (its INLINE_MAX): a bigger
 * one is read with a `collect` command instead.
 */
export const INLINE_COLLECT_MAX = 1 << 20;
const TRAILER_MAX = 40 + Math.ceil(INLINE_COLLECT_MAX / 3) * 4;

/** The trailer in `bytes` (its line, with or without the follower's newline before it). */
export function parseTrailer(bytes: Buffer): ExitTrailer | null {
  if (bytes.length > TRAILER_MAX + 2) return null;
  const m = TRAILER.exec(bytes.toString('latin1'));
  if (!m) return null;
  return {
    exitCode: Number(m[1]),
    reason: m[2] as EndReason,
    collected: m[3] === undefined ? null : Buffer.from(m[3], 'base64'),
  };
}

/** Could `line` (bytes from a line start to the end of what arrived) grow into a trailer? */
export function mayBeTrailer(line: Buffer): boolean {
  if (line.length > TRAILER_MAX) return false;
  const s = line.toString('latin1');
  if (s.length <= TRAILER_HEAD.length) return TRAILER_HEAD.startsWith(s);
  if (!s.startsWith(TRAILER_HEAD)) return false;
  return /^\d{1,3}( [a-z]*( [A-Za-z0-9+/]*=*)?\n?)?$/.test(s.slice(TRAILER_HEAD.length));
}

/**
 * No first line and the shell could not open the runner file: it vanished from the
 * server (tmp cleaners, reinstalls), as opposed to a runner that started and failed.
 */
export function looksLikeMissingRunner(exitCode: number | null, stderr: string): boolean {
  return (
    (exitCode === 127 || exitCode === 2 || exitCode === 126) &&
    /No such file|can't open|cannot open|not found/i.test(stderr)
  );
}

/** Splits the runner's `collect` answer (`CRONIUM2 collect <n>` + n sections) into files. */
export function parseCollected(out: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  let pos = out.indexOf(0x0a);
  const header = out.subarray(0, pos).toString('utf8');
  const m = /^CRONIUM2 collect (\d+)$/.exec(header);
  if (!m) throw new Error(`unexpected collect answer: ${header.slice(0, 80)}`);
  for (let i = 0; i < Number(m[1]); i++) {
    const nl = out.indexOf(0x0a, pos + 1);
    const [name, len] = out
      .subarray(pos + 1, nl)
      .toString('utf8')
      .split(' ');
    const n = Number(len);
    files.set(name, out.subarray(nl + 1, nl + 1 + n));
    pos = nl + n;
  }
  return files;
}
