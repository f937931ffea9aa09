import { PooledConnection } from './ssh.types';

export interface CommandResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** The stdout bytes, when asked for (binary-safe). */
  stdoutRaw?: Buffer;
}

const MAX_CAPTURE = 16 << 20;

/**
 * Runs one short housekeeping command (deploy, verify, collect) on its own channel,
 * feeding `stdin` and collecting bounded output. Rejects if the connection drops.
 */
export async function execCommand(
  conn: PooledConnection,
  command: string,
  stdin?: Buffer,
  timeoutMs = 60000,
  raw = false,
): Promise<CommandResult> {
  const channel = await conn.exec(command);
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    let code: number | null = null;
    let signal: string | null = null;
    let gotExit = false;
    const timer = setTimeout(() => {
      channel.close();
      reject(new Error(`command timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const offClose = conn.onClose((e) => {
      clearTimeout(timer);
      reject(e ?? new Error('connection closed'));
    });
    channel.on('data', (d: Buffer) => {
      if (outLen < MAX_CAPTURE) out.push(d);
      outLen += d.length;
    });
    channel.stderr.on('data', (d: Buffer) => {
      if (errLen < MAX_CAPTURE) err.push(d);
      errLen += d.length;
    });
    channel.on('exit', (c: number | null, s?: string) => {
      gotExit = true;
      code = c;
      signal = s ?? null;
    });
    channel.on('close', () => {
      clearTimeout(timer);
      offClose();
      if (!gotExit && conn.closed) return reject(new Error('connection closed'));
      const stdoutRaw = Buffer.concat(out);
      resolve({
        code,
        signal,
        ...(raw ? { stdoutRaw } : {}),
        stdout: stdoutRaw.toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    if (stdin) channel.end(stdin);
    else channel.end();
  });
}
