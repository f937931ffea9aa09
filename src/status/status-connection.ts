import type { StatusConfig } from '../config/app-config';
import type { ExecutionEvent } from './execution-event';
import { approxSize, laggedUpdate, wireUpdate } from './status-update';

/** The fan-out limits (config `status:`). */
export type StatusLimits = StatusConfig;

/** The part of a `ws` WebSocket used here (a fake in unit tests). */
export interface WireSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: string): void;
}
const OPEN = 1;

type Phase = 'replay' | 'live' | 'done';

/**
 * One subscription of one socket to one execution (optionally one server). Live events
 * arrive synchronously from the executor's emit(): they are only appended to a bounded
 * queue here, never written to the socket inline, so a slow client cannot slow an
 * execution. While the stored events are replayed, live events wait in a (likewise
 * bounded) buffer and are passed on afterwards, skipping what the replay already covered;
 * if that buffer overflows, it is dropped and the replay simply goes on from the database.
 * Once live, a backlog over the limit drops the subscription as `lagged`.
 */
export class StatusSubscription {
  private phase: Phase = 'replay';
  /** Highest seq handled (sent or queued, or skipped by the server filter). */
  private cursor: number;
  /** Highest seq handed to the socket: what `lagged` reports. */
  private sent: number;
  private queue: ExecutionEvent[] = [];
  private head = 0;
  private queuedBytes = 0;
  private liveBuffer: ExecutionEvent[] = [];
  private liveBytes = 0;
  private sawEnd = false;
  /** The live buffer overflowed during the replay. */
  private overflowed = false;
  private drainWaiters: Array<() => void> = [];
  /** Called once when the subscription stops for any reason. */
  onStop: () => void = () => undefined;

  constructor(
    private readonly conn: StatusConnection,
    readonly key: string,
    readonly executionId: string,
    readonly serverId: string | undefined,
    afterSeq: number,
  ) {
    this.cursor = afterSeq;
    this.sent = afterSeq;
  }

  get stopped(): boolean {
    return this.phase === 'done';
  }
  get ended(): boolean {
    return this.sawEnd;
  }
  get lastSeq(): number {
    return this.cursor;
  }
  get pending(): number {
    return this.queue.length - this.head;
  }

  /** A live event from the stream (any phase). */
  onLive(e: ExecutionEvent): void {
    if (this.phase === 'done' || this.sawEnd) return;
    if (this.phase === 'replay') {
      if (this.overflowed) return; // the replay will read these from the database
      const size = approxSize(e);
      // Half the queue's limits, so the hand-over leaves room for live events.
      if (
        this.liveBuffer.length >= this.conn.limits.maxQueuedEvents / 2 ||
        this.liveBytes + size > this.conn.limits.maxQueuedBytes / 2
      ) {
        // The replay is far behind (a flood, or a slow reader): keep nothing here; the
        // replay goes on from the database and tries to hand over to live again later.
        this.overflowed = true;
        this.liveBuffer = [];
        this.liveBytes = 0;
        return;
      }
      this.liveBuffer.push(e);
      this.liveBytes += size;
      return;
    }
    this.accept(e, false);
  }

  /** A page of stored events (replay phase). Unbounded by design: the replay pulls a page only once the previous one is out. */
  onStored(events: ExecutionEvent[]): void {
    for (const e of events) {
      if (this.phase === 'done' || this.sawEnd) return;
      this.accept(e, true);
    }
    this.conn.schedule(this.pending);
  }

  /**
   * The stored events are exhausted: pass on the buffered live events the replay did not
   * cover, then go live. False when the live buffer overflowed meanwhile: buffering starts
   * over from now, and the caller must flush the event writer and replay again.
   */
  goLive(): boolean {
    if (this.phase !== 'replay') return true;
    if (this.overflowed && !this.sawEnd) {
      this.overflowed = false;
      return false;
    }
    const buffered = this.liveBuffer;
    this.liveBuffer = [];
    this.liveBytes = 0;
    this.phase = 'live';
    for (const e of buffered) {
      if (this.stopped || this.sawEnd) break;
      this.accept(e, false);
    }
    this.conn.schedule(this.pending);
    return true;
  }

  /** Resolves once everything queued is on the socket (or the subscription stopped). */
  drained(): Promise<void> {
    if (this.pending === 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Writes up to `max` queued updates; returns how many went out. */
  sendSome(max: number): number {
    let n = 0;
    while (n < max && this.head < this.queue.length && !this.stopped) {
      const e = this.queue[this.head];
      this.queue[this.head++] = undefined as unknown as ExecutionEvent;
      this.queuedBytes -= approxSize(e);
      this.conn.sendRaw(wireUpdate(e));
      this.sent = e.seq;
      n++;
    }
    if (this.head >= this.queue.length) {
      this.queue = [];
      this.head = 0;
      this.queuedBytes = 0;
    } else if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    if (this.pending === 0) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
      if (this.sawEnd) this.stop(); // `end` is out: the subscription is complete
    }
    return n;
  }

  /** Stops without a word to the client (unsubscribe, disconnect, completion). */
  stop(): void {
    if (this.phase === 'done') return;
    this.phase = 'done';
    this.queue = [];
    this.head = 0;
    this.queuedBytes = 0;
    this.liveBuffer = [];
    this.liveBytes = 0;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
    this.onStop();
  }

  private accept(e: ExecutionEvent, fromReplay: boolean): void {
    if (e.seq <= this.cursor) return; // already covered (replay/live overlap)
    this.cursor = e.seq;
    if (e.type === 'end') this.sawEnd = true;
    if (this.serverId && e.serverId && e.serverId !== this.serverId) return;
    const size = approxSize(e);
    if (
      !fromReplay &&
      (this.pending >= this.conn.limits.maxQueuedEvents ||
        this.queuedBytes + size > this.conn.limits.maxQueuedBytes)
    ) {
      this.lag();
      return;
    }
    this.queue.push(e);
    this.queuedBytes += size;
    if (!fromReplay) this.conn.schedule(this.pending);
  }

  /** The client cannot keep up: drop the backlog, say where to resume, stop. */
  private lag(): void {
    const seq = this.sent;
    this.stop();
    this.conn.sendJson({ event: 'update', data: laggedUpdate(this.executionId, seq) });
  }
}

/**
 * One authenticated socket and its subscriptions. Writes are batched (every
 * flushIntervalMs, or as soon as flushBatch updates wait) and held back while the socket's
 * own buffer is above socketHighWater; each event still goes out as its own message.
 */
/** Batches written per flush before yielding to the event loop. */
const FLUSH_ROUNDS = 2;

export class StatusConnection {
  readonly subs = new Map<string, StatusSubscription>();
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private backoff: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    readonly ws: WireSocket,
    readonly limits: StatusLimits,
  ) {}

  get isOpen(): boolean {
    return !this.closed && this.ws.readyState === OPEN;
  }

  sendJson(msg: unknown): void {
    this.sendRaw(JSON.stringify(msg));
  }

  sendRaw(text: string): void {
    if (!this.isOpen) return;
    try {
      this.ws.send(text);
    } catch {
      /* the socket is going away; its close handler cleans up */
    }
  }

  error(message: string): void {
    this.sendJson({ event: 'error', data: { message } });
  }

  /** Arranges a flush: right away when a batch is waiting, else within flushIntervalMs. */
  schedule(pending: number): void {
    if (this.closed || pending === 0 || this.backoff) return; // backoff: a retry is armed
    if (pending >= this.limits.flushBatch) {
      if (!this.immediate) this.immediate = setImmediate(() => this.flush());
    } else if (!this.timer && !this.immediate) {
      this.timer = setTimeout(() => this.flush(), this.limits.flushIntervalMs);
    }
  }

  /** Writes queued updates round-robin across subscriptions until the socket is full. */
  flush(): void {
    this.clearTimers();
    if (!this.isOpen) return;
    // One writev for the whole batch instead of a syscall per message.
    const socket = (this.ws as any)._socket;
    socket?.cork?.();
    try {
      let left = true;
      let budget = this.limits.flushBatch * FLUSH_ROUNDS;
      while (left) {
        left = false;
        for (const sub of [...this.subs.values()]) {
          if (this.ws.bufferedAmount >= this.limits.socketHighWater) {
            // The client is not reading fast enough: try again later; meanwhile live
            // events queue up to the cap, then the subscription is dropped as lagged.
            this.backoff = setTimeout(() => this.flush(), this.limits.flushIntervalMs);
            return;
          }
          const before = sub.pending;
          sub.sendSome(this.limits.flushBatch);
          budget -= before - sub.pending;
          if (sub.pending > 0) left = true;
        }
        if (left && budget <= 0) {
          // Yield: the executions' own I/O must keep flowing while subscribers are fed.
          this.immediate = setImmediate(() => this.flush());
          return;
        }
      }
    } finally {
      socket?.uncork?.();
    }
  }

  /** Stops every subscription and timer (socket closed). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.clearTimers();
    for (const sub of [...this.subs.values()]) sub.stop();
    this.subs.clear();
  }

  private clearTimers(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    if (this.backoff) clearTimeout(this.backoff);
    this.timer = null;
    this.immediate = null;
    this.backoff = null;
  }
}
