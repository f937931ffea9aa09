import { Semaphore, withLimit } from './semaphore';

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('Semaphore', () => {
  it('respects its capacity', async () => {
    const s = new Semaphore(2);
    await s.acquire();
    expect(s.tryAcquire()).toBe(true);
    expect(s.inUse).toBe(2);
    expect(s.tryAcquire()).toBe(false);
    let third = false;
    const p = s.acquire().then(() => (third = true));
    await tick();
    expect(third).toBe(false);
    expect(s.waiting).toBe(1);
    s.release();
    await p;
    expect(third).toBe(true);
    expect(s.inUse).toBe(2); // the slot passed straight to the waiter
    expect(s.waiting).toBe(0);
    s.release();
    s.release();
    expect(s.inUse).toBe(0);
    s.release(); // never below zero
    expect(s.inUse).toBe(0);
    expect(s.tryAcquire()).toBe(true);
  });

  it('serves waiters in FIFO order', async () => {
    const s = new Semaphore(1);
    await s.acquire();
    const order: number[] = [];
    const ps = [1, 2, 3, 4].map((i) => s.acquire().then(() => order.push(i)));
    await tick();
    expect(s.waiting).toBe(4);
    for (let i = 0; i < 4; i++) {
      s.release();
      await tick();
      expect(order).toEqual([1, 2, 3, 4].slice(0, i + 1));
    }
    await Promise.all(ps);
    expect(s.inUse).toBe(1);
  });

  it('an aborted acquire removes its waiter and never takes a slot', async () => {
    const s = new Semaphore(1);
    await s.acquire();
    const ac = new AbortController();
    const aborted = s.acquire(ac.signal);
    let laterGot = false;
    const later = s.acquire().then(() => (laterGot = true));
    await tick();
    expect(s.waiting).toBe(2);
    ac.abort(new Error('gave up'));
    await expect(aborted).rejects.toThrow('gave up');
    expect(s.waiting).toBe(1);
    s.release();
    await later;
    expect(laterGot).toBe(true);
    expect(s.inUse).toBe(1);
    s.release();
    expect(s.inUse).toBe(0);
  });

  it('acquire with an already-aborted signal rejects when it would have to wait', async () => {
    const s = new Semaphore(1);
    const ac = new AbortController();
    ac.abort(new Error('early'));
    // a free slot is still taken
    await expect(s.acquire(ac.signal)).resolves.toBeUndefined();
    await expect(s.acquire(ac.signal)).rejects.toThrow('early');
    expect(s.waiting).toBe(0);
    expect(s.inUse).toBe(1);
  });

  it('rejectAll fails every waiter but leaves holders alone', async () => {
    const s = new Semaphore(1);
    await s.acquire();
    const a = s.acquire();
    const b = s.acquire();
    await tick();
    expect(s.waiting).toBe(2);
    const err = new Error('connection gone');
    s.rejectAll(err);
    await expect(a).rejects.toBe(err);
    await expect(b).rejects.toBe(err);
    expect(s.waiting).toBe(0);
    expect(s.inUse).toBe(1);
    s.release();
    expect(s.inUse).toBe(0);
  });

  it('withLimit runs at most `capacity` tasks at once and releases on failure', async () => {
    const s = new Semaphore(2);
    let running = 0;
    let peak = 0;
    const task = (i: number) =>
      withLimit(s, async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 5));
        running--;
        if (i % 3 === 0) throw new Error(`task ${i}`);
        return i;
      });
    const results = await Promise.allSettled([0, 1, 2, 3, 4, 5, 6].map(task));
    expect(peak).toBe(2);
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(3);
    expect(s.inUse).toBe(0);
    expect(s.waiting).toBe(0);
  });
});
