export interface RetryPolicy {
  attempts: number;
  initialDelayMs: number;
  factor: number;
  maxDelayMs: number;
}

/** Exponential backoff with full jitter: a random delay in [d/2, d], d = initial·factor^n capped. */
export function backoffDelay(
  policy: Omit<RetryPolicy, 'attempts'>,
  attempt: number,
  random = Math.random,
): number {
  const d = Math.min(policy.maxDelayMs, policy.initialDelayMs * Math.pow(policy.factor, attempt));
  return Math.round(d / 2 + (random() * d) / 2);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? new Error('aborted'));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason ?? new Error('aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Runs `fn` up to `policy.attempts` times while `shouldRetry(err)` holds, sleeping with
 * backoff between attempts. The last error is rethrown.
 */
export async function retry<T>(
  policy: RetryPolicy,
  fn: (attempt: number) => Promise<T>,
  shouldRetry: (err: unknown) => boolean,
  signal?: AbortSignal,
): Promise<T> {
  let lastErr: unknown;
  for (let attempt = 0; attempt < policy.attempts; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      lastErr = e;
      if (attempt + 1 >= policy.attempts || !shouldRetry(e) || signal?.aborted) break;
      await sleep(backoffDelay(policy, attempt), signal);
    }
  }
  throw lastErr;
}
