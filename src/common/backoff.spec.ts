import { backoffDelay, retry, RetryPolicy, sleep } from './backoff';

describe('backoffDelay', () => {
  const policy: RetryPolicy = { attempts: 10, initialDelayMs: 100, factor: 2, maxDelayMs: 1000 };

  it('grows exponentially: d = initial * factor^attempt, jittered into [d/2, d]', () => {
    const expected = [100, 200, 400, 800];
    expected.forEach((d, attempt) => {
      expect(backoffDelay(policy, attempt, () => 0)).toBe(d / 2);
      expect(backoffDelay(policy, attempt, () => 1)).toBe(d);
      expect(backoffDelay(policy, attempt, () => 0.5)).toBe(Math.round(d * 0.75));
    });
  });

  it('is capped at maxDelayMs', () => {
    for (const attempt of [4, 5, 10, 30]) {
      expect(backoffDelay(policy, attempt, () => 1)).toBe(1000);
      expect(backoffDelay(policy, attempt, () => 0)).toBe(500);
    }
  });

  it('stays within bounds with the real random source', () => {
    for (let attempt = 0; attempt < 8; attempt++) {
      const d = Math.min(1000, 100 * 2 ** attempt);
      for (let i = 0; i < 200; i++) {
        const v = backoffDelay(policy, attempt);
        expect(v).toBeGreaterThanOrEqual(Math.floor(d / 2));
        expect(v).toBeLessThanOrEqual(d);
      }
    }
  });

  it('a zero initial delay means no waiting', () => {
    expect(backoffDelay({ ...policy, initialDelayMs: 0 }, 3)).toBe(0);
  });
});

describe('retry', () => {
  const fast: RetryPolicy = { attempts: 4, initialDelayMs: 1, factor: 2, maxDelayMs: 5 };

  it('returns the first success without further attempts', async () => {
    const seen: number[] = [];
    const result = await retry(
      fast,
      async (attempt) => {
        seen.push(attempt);
        if (attempt < 2) throw new Error(`fail ${attempt}`);
        return `ok ${attempt}`;
      },
      () => true,
    );
    expect(result).toBe('ok 2');
    expect(seen).toEqual([0, 1, 2]);
  });

  it('succeeding immediately calls fn once', async () => {
    const fn = jest.fn(async () => 42);
    await expect(retry(fast, fn, () => true)).resolves.toBe(42);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('gives up after policy.attempts and rethrows the last error', async () => {
    let calls = 0;
    await expect(
      retry(
        fast,
        async (attempt) => {
          calls++;
          throw new Error(`fail ${attempt}`);
        },
        () => true,
      ),
    ).rejects.toThrow('fail 3');
    expect(calls).toBe(4);
  });

  it('stops at once on a non-retryable error', async () => {
    class Fatal extends Error {}
    let calls = 0;
    const shouldRetry = jest.fn((e: unknown) => !(e instanceof Fatal));
    await expect(
      retry(
        fast,
        async (attempt) => {
          calls++;
          if (attempt === 0) throw new Error('transient');
          throw new Fatal('fatal');
        },
        shouldRetry,
      ),
    ).rejects.toBeInstanceOf(Fatal);
    expect(calls).toBe(2);
    expect(shouldRetry).toHaveBeenCalledTimes(2);
  });

  it('sleeps with backoff between attempts', async () => {
    const policy: RetryPolicy = { attempts: 3, initialDelayMs: 100, factor: 2, maxDelayMs: 1000 };
    const started = Date.now();
    await expect(
      retry(
        policy,
        async () => {
          throw new Error('x');
        },
        () => true,
      ),
    ).rejects.toThrow('x');
    // at least 100/2 + 200/2 ms of backoff
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  it('an abort during the backoff sleep ends the retry loop with the abort reason', async () => {
    const policy: RetryPolicy = {
      attempts: 5,
      initialDelayMs: 10_000,
      factor: 1,
      maxDelayMs: 10_000,
    };
    const ac = new AbortController();
    let calls = 0;
    const started = Date.now();
    const p = retry(
      policy,
      async () => {
        calls++;
        throw new Error('transient');
      },
      () => true,
      ac.signal,
    );
    setTimeout(() => ac.abort(new Error('stop now')), 50);
    await expect(p).rejects.toThrow('stop now');
    expect(calls).toBe(1);
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('does not retry once the signal is aborted', async () => {
    const ac = new AbortController();
    let calls = 0;
    await expect(
      retry(
        fast,
        async () => {
          calls++;
          ac.abort();
          throw new Error('first');
        },
        () => true,
        ac.signal,
      ),
    ).rejects.toThrow('first');
    expect(calls).toBe(1);
  });
});

describe('sleep', () => {
  it('resolves after roughly the given time', async () => {
    const started = Date.now();
    await sleep(60);
    expect(Date.now() - started).toBeGreaterThanOrEqual(50);
  });

  it('rejects at once when the signal is already aborted', async () => {
    const ac = new AbortController();
    ac.abort(new Error('already'));
    const started = Date.now();
    await expect(sleep(10_000, ac.signal)).rejects.toThrow('already');
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('rejects early when the signal aborts mid-sleep', async () => {
    const ac = new AbortController();
    const started = Date.now();
    const p = sleep(10_000, ac.signal);
    setTimeout(() => ac.abort(new Error('woken')), 30);
    await expect(p).rejects.toThrow('woken');
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('rejects with a default error when the aborted signal carries no reason', async () => {
    const fakeSignal = {
      aborted: true,
      reason: undefined,
      addEventListener() {},
      removeEventListener() {},
    } as unknown as AbortSignal;
    await expect(sleep(10, fakeSignal)).rejects.toThrow('aborted');
  });

  it('removes its abort listener once it has slept', async () => {
    const ac = new AbortController();
    const remove = jest.spyOn(ac.signal, 'removeEventListener');
    await sleep(5, ac.signal);
    expect(remove).toHaveBeenCalledWith('abort', expect.any(Function));
    // aborting afterwards is harmless
    ac.abort();
  });
});
