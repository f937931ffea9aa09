import type { ScriptType } from '../executions/request';
import { shellQuote } from '../runner-cache/remote-commands';

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
 * Builds what the runner reads on stdin (docs/runner-protocol.md): a header line and
 * length-prefixed sections. Env values travel single-quoted in a file that only the
 * script's shell sources — never on a command line.
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
    Buffer.from(`CRONIUM1 ${p.runId} ${p.scriptType} ${grace} ${sections.length}\n`),
  ];
  for (const [name, data] of sections) {
    parts.push(Buffer.from(`${name} ${data.length}\n`), data);
  }
  return Buffer.concat(parts);
}
