import { TargetError } from '../executions/error-codes';

/**
 * A connect that failed at a jump host (named in the message): the server behind it is
 * not to blame, so it neither counts against that server's circuit breaker nor is retried
 * there (the jump host's own connect has retried already).
 */
export class JumpHopError extends TargetError {
  constructor(err: TargetError, hop: string) {
    super(err.code, `via jump host ${hop}: ${err.message}`, false);
    this.name = 'JumpHopError';
  }
}

/** Maps an ssh2/socket error to the spec's error codes; `retryable` marks transient ones. */
export function classifySshError(err: any, hostKeyMismatch: string | null): TargetError {
  if (err instanceof TargetError) return err;
  if (hostKeyMismatch) return new TargetError('host_key_mismatch', hostKeyMismatch);
  const msg = String(err?.message ?? err);
  if (err?.level === 'client-authentication') {
    return new TargetError(
      'auth_failed',
      'authentication failed: the server refused the credentials',
    );
  }
  if (
    /Cannot parse privateKey|Encrypted private key detected|Bad passphrase|no passphrase given/i.test(
      msg,
    )
  ) {
    return new TargetError('auth_failed', 'private key cannot be used: ' + msg);
  }
  if (err?.level === 'client-timeout') {
    return new TargetError('connect_failed', 'timed out waiting for the SSH handshake', true);
  }
  // sshd's MaxStartups drops connections before the handshake: worth another try.
  const transient =
    /Connection lost before handshake|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EPIPE|ECONNREFUSED|EAI_AGAIN/i.test(
      msg + ' ' + (err?.code ?? ''),
    );
  return new TargetError('connect_failed', `cannot connect: ${msg}`, transient);
}
