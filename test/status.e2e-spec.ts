import WebSocket from 'ws';
import {
  logsOf,
  registerServer,
  startApp,
  TEST_TOKEN,
  TestApp,
  waitForExecution,
} from './support/app';
import { eventually } from './support/processes';
import { SshdInstance, startSshd } from './support/sshd';
import { sample } from './support/metrics';

/** A real `ws` client that records everything the server sends. */
class Client {
  readonly messages: any[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: Array<() => void> = [];

  constructor(readonly ws: WebSocket) {
    ws.on('message', (raw) => {
      this.messages.push(JSON.parse(raw.toString()));
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        for (const w of this.waiters.splice(0)) w();
      }),
    );
  }

  send(event: string, data: unknown): void {
    this.ws.send(JSON.stringify({ event, data }));
  }

  get updates(): any[] {
    return this.messages.filter((m) => m.event === 'update').map((m) => m.data);
  }

  /** Waits until `pred` holds over the received messages. */
  async until(
    pred: (msgs: any[]) => boolean,
    timeoutMs = 30000,
    what = 'condition',
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.messages)) {
      if (Date.now() > deadline)
        throw new Error(
          `timed out waiting for ${what}; last: ${JSON.stringify(this.messages.slice(-3))}`,
        );
      if (this.ws.readyState === WebSocket.CLOSED)
        throw new Error(`socket closed while waiting for ${what}`);
      await new Promise<void>((r) => {
        const timer = setTimeout(r, 200);
        this.waiters.push(() => {
          clearTimeout(timer);
          r();
        });
      });
    }
  }

  untilEnd(executionId: string, timeoutMs = 60000) {
    return this.until(
      (m) =>
        m.some(
          (x) =>
            x.event === 'update' && x.data.executionId === executionId && x.data.type === 'end',
        ),
      timeoutMs,
      `end of ${executionId}`,
    );
  }

  close(): Promise<{ code: number; reason: string }> {
    this.ws.close();
    return this.closed;
  }
}

function wsUrl(t: TestApp, query = ''): string {
  return t.url.replace(/^http/, 'ws') + '/v1/status' + query;
}

/** Opens a socket; resolves once open (or closed, for refused tokens). */
function connect(
  t: TestApp,
  opts: { header?: string; query?: string } = { header: `Bearer ${TEST_TOKEN}` },
): Promise<Client> {
  const ws = new WebSocket(
    wsUrl(t, opts.query ?? ''),
    opts.header ? { headers: { Authorization: opts.header } } : {},
  );
  const client = new Client(ws);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(client));
    ws.once('error', reject);
  });
}

const seqs = (updates: any[]) => updates.map((u) => u.seq);
const consecutive = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('websocket /v1/status (real sshd)', () => {
  let sshd: SshdInstance;
  let t: TestApp;
  let serverA: string;
  let serverB: string;
  const clients: Client[] = [];

  const open = async (opts?: { header?: string; query?: string }) => {
    const c = await connect(t, opts);
    clients.push(c);
    return c;
  };

  const submit = async (content: string, serverIds = [serverA]) => {
    const res = await t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .send({ script: { type: 'bash', content }, targets: { serverIds } });
    expect(res.status).toBe(202);
    return res.body.id as string;
  };

  /** Every stored log entry, page by page. */
  const allLogs = async (id: string) => {
    const out: any[] = [];
    for (let after = 0; ; ) {
      const res = await t
        .http()
        .get(`/v1/executions/${id}/logs?afterSeq=${after}&limit=10000`)
        .set(t.auth);
      expect(res.status).toBe(200);
      out.push(...res.body.entries);
      if (res.body.entries.length < 10000) return out;
      after = res.body.nextSeq;
    }
  };

  const subscribersGauge = async () => {
    const res = await t.http().get('/metrics');
    return res.text.includes('cronium_websocket_subscribers')
      ? sample(res.text, 'cronium_websocket_subscribers')
      : NaN;
  };

  beforeAll(async () => {
    sshd = await startSshd();
    t = await startApp();
    serverA = await registerServer(t, sshd, { baseDir: `${sshd.dir}/a` });
    serverB = await registerServer(t, sshd, { baseDir: `${sshd.dir}/b` });
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) {
      if (c.ws.readyState !== WebSocket.CLOSED) c.ws.terminate();
    }
  });

  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
  });

  it('refuses a missing or wrong token with close code 1008 before any data; ?token= works', async () => {
    for (const opts of [{}, { header: 'Bearer wrong-token' }, { query: '?token=wrong' }]) {
      const c = await open(opts);
      c.send('subscribe', { executionId: '00000000-0000-4000-8000-000000000000' });
      const closed = await c.closed;
      expect(closed.code).toBe(1008);
      expect(closed.reason).toBe('unauthorized');
      expect(c.messages).toEqual([]);
    }

    const id = await submit('echo via-query');
    await waitForExecution(t, id);
    const q = await open({ query: `?token=${encodeURIComponent(TEST_TOKEN)}` });
    q.send('subscribe', { executionId: id });
    await q.untilEnd(id);
    const types = q.updates.map((u) => u.type);
    expect(types[types.length - 2]).toBe('summary');
    expect(types[types.length - 1]).toBe('end');
    expect(q.updates.some((u) => u.type === 'log' && u.text === 'via-query')).toBe(true);
    expect(q.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('replays a finished execution with every update type in its documented shape', async () => {
    const id = await submit('echo out; echo err >&2; exit 3');
    const ex = await waitForExecution(t, id);
    const c = await open();
    c.send('subscribe', { executionId: id });
    await c.untilEnd(id);
    const u = c.updates;
    expect(seqs(u)).toEqual(consecutive(1, u.length));
    for (const x of u) {
      expect(x.executionId).toBe(id);
      expect(new Date(x.ts).toISOString()).toBe(x.ts);
    }
    const status = u.find((x) => x.type === 'status');
    expect(status).toEqual({
      executionId: id,
      seq: status.seq,
      type: 'status',
      ts: status.ts,
      serverId: serverA,
      status: expect.any(String),
    });
    expect(u.filter((x) => x.type === 'status').map((x) => x.status)).toContain('running');
    const out = u.find((x) => x.type === 'log' && x.stream === 'stdout');
    expect(out).toEqual({
      executionId: id,
      seq: out.seq,
      type: 'log',
      ts: out.ts,
      serverId: serverA,
      stream: 'stdout',
      text: 'out',
    });
    expect(u.some((x) => x.type === 'log' && x.stream === 'stderr' && x.text === 'err')).toBe(true);
    const result = u.find((x) => x.type === 'result');
    // the target record, shaped as in GET /v1/executions/:id
    expect(result).toMatchObject({ ...ex.targets[0], serverId: serverA, exitCode: 3 });
    expect(result.status).toBe('failed');
    expect(typeof result.durationMs).toBe('number');
    const summary = u[u.length - 2];
    expect(summary).toEqual({
      executionId: id,
      seq: summary.seq,
      type: 'summary',
      ts: summary.ts,
      status: 'failed',
      ...ex.summary,
    });
    expect(u[u.length - 1]).toEqual({
      executionId: id,
      seq: u.length,
      type: 'end',
      ts: u[u.length - 1].ts,
    });
    // the subscription completed after `end`
    expect(await eventually(async () => (await subscribersGauge()) === 0, 5000)).toBe(true);
  });

  it('resumes mid-execution from afterSeq: every event exactly once, in order, through end', async () => {
    const id = await submit('for i in $(seq 1 300); do echo "line-$i"; sleep 0.005; done');
    const first = await open();
    first.send('subscribe', { executionId: id });
    await first.until((m) => m.some((x) => x.data?.seq >= 50), 30000, 'seq 50');
    await first.close();
    const seen = first.updates;
    expect(seqs(seen)).toEqual(consecutive(1, seen.length));

    const afterSeq = 50;
    const second = await open();
    second.send('subscribe', { executionId: id, afterSeq });
    // (the execution is still running: the replay hands over to the live stream)
    const running = await t.http().get(`/v1/executions/${id}`).set(t.auth);
    expect(running.body.status).toBe('running');
    // a third subscriber from the start, joining while the execution runs
    const third = await open();
    third.send('subscribe', { executionId: id });
    await second.untilEnd(id);
    await third.untilEnd(id);

    const ex = await waitForExecution(t, id);
    expect(ex.status).toBe('succeeded');
    const rest = second.updates;
    const last = rest[rest.length - 1].seq;
    expect(seqs(rest)).toEqual(consecutive(afterSeq + 1, last));
    expect(rest.slice(-2).map((x) => x.type)).toEqual(['summary', 'end']);
    expect(seqs(third.updates)).toEqual(consecutive(1, last));

    // the view from the first connection up to afterSeq, then the second, is the stored log
    const wsLogs = [...seen.filter((x) => x.seq <= afterSeq), ...rest]
      .filter((x) => x.type === 'log')
      .map((x) => [x.serverId, x.stream, x.text]);
    const stored = (await logsOf(t, id)).map((l) => [l.serverId, l.stream, l.text]);
    expect(wsLogs).toEqual(stored);
    expect(stored.filter((l) => l[1] === 'stdout')).toHaveLength(300);
    expect(third.updates.filter((x) => x.type === 'log').map((x) => x.text)).toEqual(
      stored.map((l) => l[2]),
    );
  });

  it('filters by serverId: only that server’s status, log and result, plus summary and end', async () => {
    const id = await submit('for i in $(seq 1 20); do echo "n-$i"; sleep 0.01; done; echo "$PWD"', [
      serverA,
      serverB,
    ]);
    const live = await open();
    live.send('subscribe', { executionId: id, serverId: serverB });
    await live.untilEnd(id);
    await waitForExecution(t, id);
    const replay = await open();
    replay.send('subscribe', { executionId: id, serverId: serverB, afterSeq: 0 });
    await replay.untilEnd(id);

    const storedB = (await logsOf(t, id, `&serverId=${serverB}`)).map((l) => [l.stream, l.text]);
    expect(storedB.filter((l) => l[0] === 'stdout')).toHaveLength(21);
    for (const c of [live, replay]) {
      const u = c.updates;
      for (let i = 1; i < u.length; i++) expect(u[i].seq).toBeGreaterThan(u[i - 1].seq);
      for (const x of u.filter((y) => ['status', 'log', 'result'].includes(y.type)))
        expect(x.serverId).toBe(serverB);
      expect(u.filter((x) => x.type === 'result')).toHaveLength(1);
      expect(u.slice(-2).map((x) => x.type)).toEqual(['summary', 'end']);
      expect(u.filter((x) => x.type === 'log').map((x) => [x.stream, x.text])).toEqual(storedB);
    }
    // without a filter both servers appear
    const all = await open();
    all.send('subscribe', { executionId: id });
    await all.untilEnd(id);
    const servers = new Set(all.updates.filter((x) => x.serverId).map((x) => x.serverId));
    expect([...servers].sort()).toEqual([serverA, serverB].sort());
  });

  it('drops a stalled subscriber as lagged without slowing the execution; it resumes from the lagged seq', async () => {
    const script = 'sleep 1; seq 1 200000';
    // baseline: the same job, nobody watching
    let started = Date.now();
    const base = await waitForExecution(t, await submit(script), 120000);
    const baselineMs = Date.now() - started;
    expect(base.status).toBe('succeeded');

    const c = await open();
    started = Date.now();
    const id = await submit(script);
    c.send('subscribe', { executionId: id });
    // once the subscription is live (the replay is short: the script sleeps first)...
    await c.until((m) => m.length > 0, 10000, 'a first update');
    // ...stop reading: the kernel buffers fill, then the server's
    (c.ws as any)._socket.pause();
    const ex = await waitForExecution(t, id, 120000);
    const stalledMs = Date.now() - started;
    expect(ex.status).toBe('succeeded');
    expect(stalledMs).toBeLessThan(baselineMs * 3 + 5000);

    (c.ws as any)._socket.resume();
    await c.until((m) => m.some((x) => x.data?.type === 'lagged'), 60000, 'the lagged notice');
    const before = c.updates.filter((x) => x.type !== 'lagged');
    const lagged = c.updates.find((x) => x.type === 'lagged');
    expect(lagged).toEqual({ executionId: id, type: 'lagged', seq: lagged.seq, ts: lagged.ts });
    expect(lagged.seq).toBeGreaterThan(0);
    expect(lagged.seq).toBeLessThan(200000);
    // everything delivered before the notice is the gap-free prefix up to its seq
    expect(seqs(before)).toEqual(consecutive(1, lagged.seq));
    expect(c.messages[c.messages.length - 1].data.type).toBe('lagged');

    // resubscribing with afterSeq = lagged seq delivers the rest, through end
    const n = c.messages.length;
    c.send('subscribe', { executionId: id, afterSeq: lagged.seq });
    await c.untilEnd(id, 120000);
    const rest = c.messages.slice(n).map((m) => m.data);
    const last = rest[rest.length - 1].seq;
    expect(seqs(rest)).toEqual(consecutive(lagged.seq + 1, last));
    expect(rest.slice(-2).map((x) => x.type)).toEqual(['summary', 'end']);
    // together, the two views are exactly the stored log
    const wsLogs = [...before, ...rest]
      .filter((x) => x.type === 'log')
      .map((x) => `${x.stream}:${x.text}`);
    expect(wsLogs).toEqual((await allLogs(id)).map((l) => `${l.stream}:${l.text}`));
    // (under load the capture may flush a partial line early, so compare the bytes)
    const stdout = [...before, ...rest].filter((x) => x.type === 'log' && x.stream === 'stdout');
    expect(stdout.map((x) => x.text).join('')).toBe(consecutive(1, 200000).join(''));
  }, 240000);

  it('does not drop a reader that keeps up through a burst of output', async () => {
    const c = await open();
    const id = await submit('seq 1 30000');
    c.send('subscribe', { executionId: id });
    await c.untilEnd(id, 60000);
    const u = c.updates;
    expect(u.filter((x) => x.type === 'lagged')).toEqual([]);
    expect(seqs(u)).toEqual(consecutive(1, u.length));
    const out = u.filter((x) => x.type === 'log' && x.stream === 'stdout').map((x) => x.text);
    expect(out.join('')).toBe(consecutive(1, 30000).join(''));
  });

  it('a client that resumes on lagged gets every event exactly once when it joins during a flood', async () => {
    const c = await open();
    c.ws.on('message', (raw) => {
      const m = JSON.parse(raw.toString());
      if (m.data?.type === 'lagged') c.send('subscribe', { executionId: id, afterSeq: m.data.seq });
    });
    const id = await submit('seq 1 60000');
    await new Promise((r) => setTimeout(r, 400)); // the flood is under way
    c.send('subscribe', { executionId: id });
    await c.untilEnd(id, 120000);
    const u = c.updates.filter((x) => x.type !== 'lagged');
    expect(seqs(u)).toEqual(consecutive(1, u.length));
    expect(u.slice(-2).map((x) => x.type)).toEqual(['summary', 'end']);
    const wsLogs = u.filter((x) => x.type === 'log').map((x) => `${x.stream}:${x.text}`);
    expect(wsLogs).toEqual((await allLogs(id)).map((l) => `${l.stream}:${l.text}`));
  });

  it('stops updates after unsubscribe', async () => {
    const id = await submit('for i in $(seq 1 40); do echo "u-$i"; sleep 0.05; done');
    const c = await open();
    c.send('subscribe', { executionId: id });
    await c.until((m) => m.some((x) => x.data?.type === 'log'), 30000, 'a first log line');
    expect(await eventually(async () => (await subscribersGauge()) === 1, 5000)).toBe(true);
    c.send('unsubscribe', { executionId: id });
    await new Promise((r) => setTimeout(r, 300)); // what was already on the wire
    const count = c.messages.length;
    expect(await subscribersGauge()).toBe(0);
    await waitForExecution(t, id);
    await new Promise((r) => setTimeout(r, 500));
    expect(c.messages.length).toBe(count);
    expect(c.updates.some((x) => x.type === 'end')).toBe(false);
    expect(c.updates.filter((x) => x.type === 'log').length).toBeLessThan(40);
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('answers an unknown execution and malformed messages with an error event and keeps the socket open', async () => {
    const c = await open();
    c.send('subscribe', { executionId: '6f1c2a9e-8d34-4b7a-9e51-0c2d3e4f5a6b' });
    await c.until((m) => m.length >= 1, 10000, 'an error');
    expect(c.messages[0]).toEqual({
      event: 'error',
      data: { message: expect.stringMatching(/not found/) },
    });

    const bad: Array<[string, unknown]> = [
      ['subscribe', { executionId: 'not-a-uuid' }],
      ['subscribe', null],
      ['subscribe', { executionId: '6f1c2a9e-8d34-4b7a-9e51-0c2d3e4f5a6b', afterSeq: -1 }],
      ['subscribe', { executionId: '6f1c2a9e-8d34-4b7a-9e51-0c2d3e4f5a6b', serverId: 'x' }],
      ['unsubscribe', {}],
      ['frobnicate', {}],
    ];
    for (const [event, data] of bad) c.send(event, data);
    c.ws.send('this is not json');
    await c.until((m) => m.length >= 1 + bad.length + 1, 10000, 'all errors');
    expect(c.messages.every((m) => m.event === 'error' && typeof m.data.message === 'string')).toBe(
      true,
    );
    expect(c.ws.readyState).toBe(WebSocket.OPEN);

    // the same socket still serves a valid subscription
    const id = await submit('echo still-open');
    c.send('subscribe', { executionId: id });
    await c.untilEnd(id);
    expect(c.updates.some((x) => x.type === 'log' && x.text === 'still-open')).toBe(true);
  });
});
