import type { ClientChannel } from 'ssh2';
import { retry, RetryPolicy } from '../common/backoff';
import { TargetError } from '../executions/error-codes';
import { PooledConnection } from './ssh.types';

export interface CommandResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** The stdout bytes (binary-safe). */
  stdoutRaw: Buffer;
}

export interface ExecOptions {
  /** Fed to the command's stdin, then closed (closed at once without it). */
  stdin?: Buffer;
  timeoutMs?: number;
  /** The error a timeout rejects with (default: a plain "timed out" error). */
  timeoutError?: (timeoutMs: number) => Error;
  /** Tries again when the server refuses the channel for a moment (see openChannel). */
  openRetry?: RetryPolicy;
}

/**
 * Opens an exec channel. sshd frees a session only when its close is acknowledged, so a
 * burst can briefly hit MaxSessions ("Channel open failure"): with `policy`, that is
 * worth a short wait and another try. `wire` attaches listeners as the channel opens.
 */
export function openChannel(
  conn: PooledConnection,
  command: string,
  policy: RetryPolicy | undefined,
  wire?: (channel: ClientChannel) => void,
): Promise<ClientChannel> {
  if (!policy) return conn.exec(command, wire);
  return retry(
    policy,
    () => conn.exec(command, wire),
    (e) => e instanceof TargetError && e.retryable && !conn.closed,
  );
}

const MAX_CAPTURE = 16 << 20;

/**
 * Runs one short command (deploy, verify, collect, a server check) on its own channel,
 * feeding stdin and collecting bounded output. Rejects with `connection_lost` when the
 * connection drops first. Listeners are attached as the channel opens, so an exit status
 * that arrives in the same packet burst as the open confirmation is not missed.
 */
export function execCommand(
  conn: PooledConnection,
  command: string,
  opts: ExecOptions = {},
): Promise<CommandResult> {
  const timeoutMs = opts.timeoutMs ?? 60000;
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    let code: number | null = null;
    let signal: string | null = null;
    let gotExit = false;
    let channel: ClientChannel | null = null;
    const lost = () =>
      new TargetError('connection_lost', `SSH connection lost while running a command`);
    const timer = setTimeout(() => {
      channel?.close();
      offClose();
      reject(
        opts.timeoutError?.(timeoutMs) ?? new Error(`command timed out after ${timeoutMs} ms`),
      );
    }, timeoutMs);
    const offClose = conn.onClose(() => {
      clearTimeout(timer);
      reject(lost());
    });
    const fail = (e: unknown) => {
      clearTimeout(timer);
      offClose();
      reject(e);
    };
    openChannel(conn, command, opts.openRetry, (ch) => {
      channel = ch;
      ch.on('data', (d: Buffer) => {
        if (outLen < MAX_CAPTURE) out.push(d);
        outLen += d.length;
      });
      ch.stderr.on('data', (d: Buffer) => {
        if (errLen < MAX_CAPTURE) err.push(d);
        errLen += d.length;
      });
      ch.on('exit', (c: number | null, s?: string) => {
        gotExit = true;
        code = c;
        signal = s ?? null;
      });
      ch.on('error', () => undefined); // 'close' follows
      ch.on('close', () => {
        clearTimeout(timer);
        offClose();
        if (!gotExit && conn.closed) return reject(lost());
        const stdoutRaw = Buffer.concat(out);
        resolve({
          code,
          signal,
          stdoutRaw,
          stdout: stdoutRaw.toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
        });
      });
      if (opts.stdin) ch.end(opts.stdin);
      else ch.end();
    }).catch(fail);
  });
}
