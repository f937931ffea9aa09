/**
 * Following one execution to its end: its log lines live over the websocket (/v1/status,
 * docs/websocket.md), prefixed `[server-name]`, and a progress line on a TTY. The
 * subscription starts at afterSeq 0, so lines written before it are replayed; after the
 * end the log is reconciled with GET /v1/executions/:id/logs, so a line the socket did not
 * bring (a dropped connection, the socket refused) is printed from there, and none twice.
 */
import WebSocket from 'ws';
import { FINAL_EXECUTION_STATUSES, TERMINAL_TARGET_STATUSES } from '../executions/statuses';
import { Api, ExecutionView, LogEntry } from './api';
import { colourOn, formatDuration, paint, serverColour } from './output';

const FINAL: readonly string[] = FINAL_EXECUTION_STATUSES;
export const isFinal = (status: string) => FINAL.includes(status);
const TARGET_DONE: readonly string[] = TERMINAL_TARGET_STATUSES;
/** Log entries per GET of the reconcile (the service's default page). */
const LOG_PAGE = 1000;
const TARGET_FAILED = ['failed', 'timed_out'];

/** One log line as the CLI prints it, and as `--json` lists it. */
export interface LogLine {
  serverId: string | null;
  serverName: string;
  stream: string;
  text: string;
}

export interface FollowOptions {
  serverId?: string;
  /** Collect the lines instead of printing them (--json). */
  collect?: boolean;
  /** Draw the progress line on stderr (only honoured when stderr is a TTY). */
  progress?: boolean;
  noColour?: boolean;
  /** Print the service's own `system` lines too (collected ones always include them). */
  system?: boolean;
}

interface Update {
  executionId: string;
  seq: number;
  type: string;
  serverId?: string;
  status?: string;
  stream?: string;
  text?: string;
}

/** Reconnects of a dropped socket before falling back to long-polls. */
const MAX_RECONNECTS = 5;

export class Follower {
  readonly lines: LogLine[] = [];
  private readonly names = new Map<string, string>();
  private readonly colours = new Map<string, number>();
  private readonly statuses = new Map<string, string>();
  private readonly colour: boolean;
  private readonly progressOn: boolean;
  private lastSeq = 0;
  private shownLogs = 0;
  private progressShown = false;
  private readonly startedAt = Date.now();
  private ticker?: NodeJS.Timeout;
  private socket?: WebSocket;
  private note?: string;

  constructor(
    private readonly api: Api,
    private execution: ExecutionView,
    private readonly opts: FollowOptions = {},
  ) {
    execution.targets.forEach((t, i) => {
      this.names.set(t.serverId, t.serverName);
      this.colours.set(t.serverId, serverColour(i));
      this.statuses.set(t.serverId, t.status);
    });
    this.colour = !opts.collect && colourOn(process.stdout, opts.noColour);
    this.progressOn = !opts.collect && !!opts.progress && !!process.stderr.isTTY;
  }

  /** A message under the progress line, e.g. that Ctrl-C is cancelling. */
  say(message: string): void {
    this.clearProgress();
    process.stderr.write(message + '\n');
    this.drawProgress();
  }

  /** Waits for the end; returns the final execution. All its log lines are shown by then. */
  async run(): Promise<ExecutionView> {
    const id = this.execution.id;
    if (this.progressOn) {
      this.ticker = setInterval(() => this.drawProgress(), 500);
      this.drawProgress();
    }
    try {
      // Without the socket, the long-poll ends holding the final view already.
      const polled = (await this.stream(id)) ? undefined : await this.poll(id);
      // The log is complete once the execution has ended: both requests at once.
      const [ex] = await Promise.all([polled ?? waitForEnd(this.api, id), this.reconcile(id)]);
      this.execution = ex;
      this.updateStatuses(ex);
      return ex;
    } finally {
      if (this.ticker) clearInterval(this.ticker);
      this.socket?.terminate();
      this.clearProgress();
    }
  }

  /** Prints (or collects) the stored log as it is now, without following it. */
  async showStored(): Promise<void> {
    await this.reconcile(this.execution.id);
  }

  /** The websocket until `end`: true when it came, false when the socket gave up. */
  private async stream(id: string): Promise<boolean> {
    for (let attempt = 0; attempt <= MAX_RECONNECTS; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
      const outcome = await this.once(id);
      if (outcome === 'end') return true;
      if (outcome === 'refused') return false;
    }
    return false;
  }

  private once(id: string): Promise<'end' | 'dropped' | 'refused'> {
    return new Promise((resolve) => {
      const ws = new WebSocket(this.api.statusUrl(), { headers: this.api.authHeader() });
      this.socket = ws;
      const subscribe = (afterSeq: number) =>
        ws.send(
          JSON.stringify({
            event: 'subscribe',
            data: {
              executionId: id,
              afterSeq,
              ...(this.opts.serverId ? { serverId: this.opts.serverId } : {}),
            },
          }),
        );
      let settled = false;
      const settle = (o: 'end' | 'dropped' | 'refused') => {
        if (settled) return;
        settled = true;
        ws.removeAllListeners();
        ws.on('error', () => undefined);
        ws.terminate();
        resolve(o);
      };
      ws.on('open', () => subscribe(this.lastSeq));
      ws.on('message', (raw) => {
        let msg: { event?: string; data?: Update & { message?: string } };
        try {
          msg = JSON.parse(String(raw));
        } catch {
          return;
        }
        const data = msg.data;
        if (msg.event === 'error') {
          // e.g. afterSeq at or past the end of a finished execution: nothing more to get.
          return settle('refused');
        }
        if (msg.event !== 'update' || !data || data.executionId !== id) return;
        if (data.type === 'lagged') return subscribe(data.seq);
        if (data.seq <= this.lastSeq) return; // already handled before a resubscribe
        this.lastSeq = data.seq;
        this.onUpdate(data);
        if (data.type === 'end') settle('end');
      });
      ws.on('unexpected-response', () => settle('refused')); // e.g. not a websocket endpoint
      ws.on('close', (code) => settle(code === 1008 ? 'refused' : 'dropped'));
      ws.on('error', () => settle('dropped'));
    });
  }

  /** Without the socket: long-polls until the end (the log comes from reconcile). */
  private async poll(id: string): Promise<ExecutionView> {
    for (;;) {
      const ex = await this.api.getExecution(id, 10);
      this.updateStatuses(ex);
      if (isFinal(ex.status)) return ex;
    }
  }

  private onUpdate(u: Update): void {
    if (u.type === 'status' && u.serverId && u.status) {
      this.statuses.set(u.serverId, u.status);
      this.drawProgress();
    } else if (u.type === 'log') {
      this.shownLogs++;
      this.emit(u.serverId ?? null, u.stream ?? 'stdout', u.text ?? '');
    }
  }

  private updateStatuses(ex: ExecutionView): void {
    for (const t of ex.targets) this.statuses.set(t.serverId, t.status);
    this.drawProgress();
  }

  /** The stored lines after the ones shown, page by page. */
  private async reconcile(id: string): Promise<void> {
    // Log entries are numbered 1, 2, … over the whole execution; with a server filter the
    // shown lines are that server's first ones instead, so they are skipped by count.
    let skip = this.opts.serverId ? this.shownLogs : 0;
    let afterSeq = this.opts.serverId ? 0 : this.shownLogs;
    for (;;) {
      const page = await this.api.logs(id, {
        afterSeq,
        serverId: this.opts.serverId,
        limit: LOG_PAGE,
      });
      for (const e of page.entries) {
        if (skip > 0) skip--;
        else this.emitEntry(e);
      }
      // A page short of the limit is the last one: no request for an empty page after it.
      if (page.entries.length < LOG_PAGE || page.nextSeq === afterSeq) return;
      afterSeq = page.nextSeq;
    }
  }

  private emitEntry(e: LogEntry): void {
    this.emit(e.serverId, e.stream, e.text ?? '');
  }

  private emit(serverId: string | null, stream: string, text: string): void {
    const serverName = serverId ? (this.names.get(serverId) ?? serverId) : 'cronium';
    if (this.opts.collect) {
      this.lines.push({ serverId, serverName, stream, text });
      return;
    }
    if (stream === 'system' && !this.opts.system) return;
    const colour = serverId ? (this.colours.get(serverId) ?? 37) : 90;
    const prefix = paint(this.colour, colour, `[${serverName}]`);
    const body = stream === 'system' ? paint(this.colour, 90, text) : text;
    this.clearProgress();
    (stream === 'stdout' ? process.stdout : process.stderr).write(`${prefix} ${body}\n`);
    this.drawProgress();
  }

  private clearProgress(): void {
    if (!this.progressShown) return;
    process.stderr.write('\r\x1b[K');
    this.progressShown = false;
  }

  /** `[####------] 2/3 done, 1 failed, 1 running  4.2s`, redrawn in place on stderr. */
  private drawProgress(): void {
    if (!this.progressOn) return;
    const all = [...this.statuses.values()];
    const done = all.filter((s) => TARGET_DONE.includes(s)).length;
    const failed = all.filter((s) => TARGET_FAILED.includes(s)).length;
    const running = all.length - done - all.filter((s) => s === 'queued').length;
    const width = 20;
    const filled = all.length ? Math.round((done / all.length) * width) : 0;
    const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
    const line =
      `[${bar}] ${done}/${all.length} done, ${failed} failed, ${running} running  ` +
      formatDuration(Date.now() - this.startedAt) +
      (this.note ? `  ${this.note}` : '');
    process.stderr.write('\r\x1b[K' + line);
    this.progressShown = true;
  }

  /** A short state shown at the end of the progress line (e.g. "cancelling"). */
  setNote(note: string): void {
    this.note = note;
    this.drawProgress();
  }
}

/** The execution once it has ended: long-polls (GET ?wait=30) until its status is final. */
export async function waitForEnd(api: Api, id: string): Promise<ExecutionView> {
  let ex = await api.getExecution(id);
  while (!isFinal(ex.status)) ex = await api.getExecution(id, 30);
  return ex;
}
