/** A counting semaphore with FIFO waiters and abortable acquisition. */
export class Semaphore {
  private readonly waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  private active = 0;

  constructor(private capacity: number) {}

  get inUse(): number {
    return this.active;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  tryAcquire(): boolean {
    if (this.active < this.capacity) {
      this.active++;
      return true;
    }
    return false;
  }

  acquire(signal?: AbortSignal): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason ?? new Error('aborted'));
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject,
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal!.reason ?? new Error('aborted'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  release(): void {
    const next = this.waiters.shift();
    if (next)
      next.resolve(); // the slot passes straight to the next waiter
    else this.active = Math.max(0, this.active - 1);
  }

  /** Fails every waiter (e.g. the connection they wait on is gone). */
  rejectAll(err: unknown): void {
    for (const w of this.waiters.splice(0)) w.reject(err);
  }
}

/** Runs tasks with at most `limit` at once. */
export async function withLimit<T>(sem: Semaphore, fn: () => Promise<T>, signal?: AbortSignal) {
  await sem.acquire(signal);
  try {
    return await fn();
  } finally {
    sem.release();
  }
}
