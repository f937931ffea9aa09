/**
 * The runner protocol (docs/runner-protocol.md): every byte the service and the remote
 * runner exchange, and the parsers for what the runner prints. Nothing here touches a
 * channel; `runner-session.ts` holds the conversation, `commands.ts` the command lines.
 */
import type { ScriptType } from '../executions/request';

/** The protocol word that starts every line the runner (or the deploy step) prints. */
export const PROTOCOL = 'CRONIUM1';

/** Single-quotes a string for a POSIX shell (`'` becomes `'\''`). */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

// ── the run payload (service → runner, on stdin) ─────────────────────────────────────

export interface RunPayloadInput {
  runId: string;
  scriptType: ScriptType;
  graceSeconds: number;
  env: Record<string, string>;
  script: string;
  /** Extra files for the helpers (input.json, context.json, …). */
  files?: Record<string, string | Buffer>;
  /** Keep the run directory after the script (bundled mode collects results from it). */
  keep?: boolean;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SECTION_NAME = /^[a-z][a-z0-9_.-]*$/;

/**
 * Builds what the runner reads on stdin: a header line and length-prefixed sections.
 * Env values travel single-quoted in a file that only the script's shell sources —
 * never on a command line.
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
  sections.push(['script', Buffer.from(p.script, 'utf8')]);
  const grace = Math.max(0, Math.ceil(p.graceSeconds));
  const parts: Buffer[] = [
    Buffer.from(`${PROTOCOL} ${p.runId} ${p.scriptType} ${grace} ${sections.length}\n`),
  ];
  for (const [name, data] of sections) {
    parts.push(Buffer.from(`${name} ${data.length}\n`), data);
  }
  return Buffer.concat(parts);
}

// ── the control stream (service → runner, on stdin after the payload) ────────────────

/** Words the runner obeys on its control stream: both kill the script's whole tree. */
export type ControlWord = 'cancel' | 'timeout';

export function controlLine(word: ControlWord): string {
  return `${word}\n`;
}

// ── what the runner prints ───────────────────────────────────────────────────────────

/** The most stdout the runner may print before its first line. */
export const FIRST_LINE_MAX = 4096;

export interface ReadyLine {
  version: string;
  /** `<os> <arch>` as the runner reports them. */
  platform: string;
}

/** `CRONIUM1 ready <version> <os> <arch>`: the script starts right after this line. */
export function parseReadyLine(line: string): ReadyLine | null {
  const m = /^CRONIUM1 ready (\S+) (.*)$/.exec(line);
  return m ? { version: m[1], platform: m[2] } : null;
}

/** The message of a `CRONIUM1 error <message>` line anywhere in `text`, else null. */
export function parseErrorLine(text: string): string | null {
  return /^CRONIUM1 error (.*)$/m.exec(text)?.[1] ?? null;
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

/** Splits the runner's `collect` answer (`CRONIUM1 collect <n>` + n sections) into files. */
export function parseCollected(out: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  let pos = out.indexOf(0x0a);
  const header = out.subarray(0, pos).toString('utf8');
  const m = /^CRONIUM1 collect (\d+)$/.exec(header);
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
