import * as os from 'node:os';
import { loadConfig } from '../config/load-config';
import type { ExecutionEvent } from './execution-event';
import { StatusConnection, StatusSubscription, WireSocket } from './status-connection';

/** The configured defaults (config/default.yaml, `status:`). */
const STATUS_LIMITS = loadConfig({
  CRONIUM_DATA_DIR: os.tmpdir(),
  CRONIUM_JWT_SECRET: 'j'.repeat(40),
  CRONIUM_SECRETS_KEY: 'k'.repeat(40),
  CRONIUM_SERVICE_TOKENS: 'token-aaaaaaaaaaaaaaaa',
}).status;

const EX = '11111111-1111-4111-8111-111111111111';
const A = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
const B = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb';

class FakeSocket implements WireSocket {
  readyState = 1;
  bufferedAmount = 0;
  sent: any[] = [];
  send(data: string): void {
    this.sent.push(JSON.parse(data));
  }
  get updates() {
    return this.sent.filter((m) => m.event === 'update').map((m) => m.data);
  }
}

const log = (seq: number, serverId = A, text = `line ${seq}`): ExecutionEvent => ({
  executionId: EX,
  seq,
  type: 'log',
  ts: 1_700_000_000_000 + seq,
  serverId,
  stream: 'stdout',
  text,
});
const end = (seq: number): ExecutionEvent => ({ executionId: EX, seq, type: 'end', ts: 1 });

function setup(
  opts: { serverId?: string; afterSeq?: number; limits?: Partial<typeof STATUS_LIMITS> } = {},
) {
  const ws = new FakeSocket();
  const conn = new StatusConnection(ws, { ...STATUS_LIMITS, ...opts.limits });
  const sub = new StatusSubscription(conn, 'k', EX, opts.serverId, opts.afterSeq ?? 0);
  conn.subs.set('k', sub);
  let stops = 0;
  sub.onStop = () => {
    stops++;
    conn.subs.delete('k');
  };
  return { ws, conn, sub, stops: () => stops };
}

describe('StatusSubscription', () => {
  afterEach(() => jest.useRealTimers());

  it('merges replay and buffered live events with no gap and no duplicate', () => {
    const { ws, conn, sub } = setup({ afterSeq: 2 });
    sub.onLive(log(5)); // emitted while the replay reads the database
    sub.onLive(log(6));
    sub.onStored([log(3), log(4), log(5)]);
    sub.goLive();
    sub.onLive(log(6)); // a late duplicate is ignored
    sub.onLive(log(7));
    conn.flush();
    expect(ws.updates.map((u) => u.seq)).toEqual([3, 4, 5, 6, 7]);
    expect(ws.updates[0]).toEqual({
      executionId: EX,
      seq: 3,
      type: 'log',
      ts: new Date(1_700_000_000_003).toISOString(),
      serverId: A,
      stream: 'stdout',
      text: 'line 3',
    });
    conn.close();
  });

  it('filters by server but always passes summary and end, then completes', () => {
    const { ws, conn, sub, stops } = setup({ serverId: B });
    sub.goLive();
    sub.onLive(log(1, A));
    sub.onLive(log(2, B));
    sub.onLive({
      executionId: EX,
      seq: 3,
      type: 'summary',
      ts: 1,
      status: 'succeeded',
      data: { total: 2 },
    });
    sub.onLive(end(4));
    sub.onLive(log(5, B)); // nothing after end
    conn.flush();
    expect(ws.updates.map((u) => [u.seq, u.type])).toEqual([
      [2, 'log'],
      [3, 'summary'],
      [4, 'end'],
    ]);
    expect(ws.updates[1]).toMatchObject({ status: 'succeeded', total: 2 });
    expect(stops()).toBe(1);
  });

  it('holds back while the socket is full and drops an overflowing backlog as lagged', () => {
    jest.useFakeTimers();
    const { ws, conn, sub, stops } = setup({ limits: { maxQueuedEvents: 5 } });
    sub.goLive();
    sub.onLive(log(1));
    sub.onLive(log(2));
    conn.flush();
    ws.bufferedAmount = STATUS_LIMITS.socketHighWater; // the client stopped reading
    for (let s = 3; s <= 7; s++) sub.onLive(log(s));
    jest.advanceTimersByTime(200);
    expect(ws.updates.map((u) => u.seq)).toEqual([1, 2]);
    sub.onLive(log(8)); // the sixth queued event: over the cap
    expect(stops()).toBe(1);
    const lagged = ws.updates[ws.updates.length - 1];
    expect(lagged).toEqual({ executionId: EX, seq: 2, type: 'lagged', ts: expect.any(String) });
    ws.bufferedAmount = 0;
    jest.advanceTimersByTime(200);
    sub.onLive(log(9));
    expect(ws.updates).toHaveLength(3); // nothing after lagged
  });

  it('goes back to the database when the live buffer overflows during a replay', () => {
    const { ws, conn, sub, stops } = setup({ afterSeq: 10, limits: { maxQueuedEvents: 4 } });
    sub.onLive(log(20));
    sub.onLive(log(21));
    sub.onLive(log(22)); // over half the cap: the buffer is dropped, no lagged
    sub.onStored([log(11), log(12)]);
    conn.flush();
    expect(sub.goLive()).toBe(false); // catch up again from the database
    sub.onLive(log(24)); // buffered again from now on
    sub.onStored([13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23].map((s) => log(s)));
    conn.flush();
    expect(sub.goLive()).toBe(true);
    sub.onLive(log(25));
    conn.flush();
    expect(stops()).toBe(0);
    expect(ws.updates.map((u) => u.seq)).toEqual([
      11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
    ]);
    conn.close();
  });

  it('batches: one flush after flushIntervalMs for a few events, at once for a full batch', () => {
    jest.useFakeTimers();
    const { ws, conn, sub } = setup();
    sub.goLive();
    sub.onLive(log(1));
    expect(ws.sent).toHaveLength(0);
    jest.advanceTimersByTime(STATUS_LIMITS.flushIntervalMs);
    expect(ws.sent).toHaveLength(1);
    for (let s = 2; s < 2 + STATUS_LIMITS.flushBatch; s++) sub.onLive(log(s));
    expect(ws.sent).toHaveLength(1); // never written inside the emitter's call
    jest.runOnlyPendingTimers(); // setImmediate
    expect(ws.sent).toHaveLength(1 + STATUS_LIMITS.flushBatch);
    conn.close();
  });
});
