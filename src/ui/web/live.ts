import { getToken, tokenRefused } from './session';

/** One `update` of the websocket /v1/status (docs/websocket.md). */
export interface Update {
  executionId: string;
  seq: number;
  type: 'status' | 'log' | 'result' | 'summary' | 'end' | 'lagged';
  ts: string;
  serverId?: string;
  [field: string]: any;
}

/**
 * One subscription on its own socket, authenticated with the token as a subprotocol
 * (never in the URL). Updates are queued as they arrive and handed over once per animation
 * frame, so a burst of thousands costs one render. Reconnects (and resumes after the last
 * seq) when the socket drops; resubscribes after `lagged`.
 */
export class LiveFeed {
  private ws?: WebSocket;
  private lastSeq = 0;
  private queue: Update[] = [];
  private frame = 0;
  private closed = false;
  private ended = false;
  private retry?: ReturnType<typeof setTimeout>;

  constructor(
    private readonly executionId: string,
    private readonly serverId: string | undefined,
    private readonly onBatch: (updates: Update[]) => void,
    private readonly onError: (message: string) => void = () => undefined,
  ) {
    this.open();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retry);
    cancelAnimationFrame(this.frame);
    this.ws?.close(1000);
  }

  private open(): void {
    const token = getToken();
    if (!token || this.closed) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/v1/status`, [
      'cronium.v1',
      `cronium.token.${token}`,
    ]);
    this.ws = ws;
    ws.onopen = () => this.subscribe(this.lastSeq);
    ws.onmessage = (m) => this.receive(String(m.data));
    ws.onclose = (e) => {
      if (this.ws !== ws || this.closed || this.ended) return;
      if (e.code === 1008) return tokenRefused();
      this.retry = setTimeout(() => this.open(), 1000);
    };
  }

  private subscribe(afterSeq: number): void {
    const data = { executionId: this.executionId, afterSeq, serverId: this.serverId };
    this.ws?.send(JSON.stringify({ event: 'subscribe', data }));
  }

  private receive(raw: string): void {
    let msg: { event: string; data: any };
    try {
      msg = JSON.parse(raw);
    } catch {
      return;
    }
    if (msg.event === 'error') return this.onError(String(msg.data?.message));
    if (msg.event !== 'update') return;
    const u = msg.data as Update;
    if (u.type === 'lagged') return this.subscribe(u.seq); // fell behind: resume from there
    if (u.seq <= this.lastSeq) return; // already had it (a resume overlaps)
    this.lastSeq = u.seq;
    if (u.type === 'end') {
      this.ended = true;
      this.ws?.close(1000);
    }
    this.queue.push(u);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  private flush(): void {
    this.frame = 0;
    const batch = this.queue;
    this.queue = [];
    if (batch.length && !this.closed) this.onBatch(batch);
  }
}
