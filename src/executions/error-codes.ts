/** Target error codes from the spec; every failure before or around a script maps to one. */
export const TARGET_ERROR_CODES = [
  'host_key_mismatch',
  'auth_failed',
  'connect_failed',
  'deploy_failed',
  'tunnel_failed',
  'connection_lost',
  'runner_error',
  /** The script's interpreter (bash, python3, node) is not on the server's PATH. */
  'interpreter_missing',
  'orchestrator_restarted',
  /** sudo refused to run the script as the job's `become.user` (wrong password, no rule). */
  'become_failed',
  /** The service's own bookkeeping failed (a bug, or a value it could not store). */
  'internal_error',
  'timed_out',
  'cancelled',
  /** Skipped: an earlier batch failed more than its `batch.maxFailPercentage`. */
  'batch_failed',
] as const;

export type TargetErrorCode = (typeof TARGET_ERROR_CODES)[number];

export class TargetError extends Error {
  constructor(
    readonly code: TargetErrorCode,
    message: string,
    readonly retryable = false,
  ) {
    super(message);
    this.name = 'TargetError';
  }
}

export function isTargetError(e: unknown): e is TargetError {
  return e instanceof TargetError;
}
