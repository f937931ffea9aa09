/**
 * The read-only live view (docs/ui.md): executions newest first, one execution as a grid
 * of its targets, a target's log. Plain DOM, no framework; data from the REST API and the
 * websocket /v1/status with the token from sessionStorage.
 */
import './app.css';
import { summarize } from '../../executions/aggregate';
import {
  EXECUTION_STATUSES,
  FINAL_EXECUTION_STATUSES,
  TERMINAL_TARGET_STATUSES,
  type TargetStatus,
} from '../../executions/statuses';
import { LiveFeed, Update } from './live';
import { api, ApiError, clearToken, getToken, setToken, whenRefused } from './session';
import { Windowed } from './windowed';

interface Phases {
  connectMs: number | null;
  deployMs: number | null;
  tunnelMs: number | null;
  runMs: number | null;
}

interface Target {
  serverId: string;
  serverName: string;
  status: string;
  exitCode: number | null;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  phases: Phases | null;
  error?: { code: string; message: string };
  /** Bumped on every change: the grid repaints a cell only when it moved. */
  v: number;
}

interface Execution {
  id: string;
  name: string | null;
  status: string;
  createdAt: string;
  summary: Record<string, number>;
  targets: Target[];
}

const main = document.getElementById('main') as HTMLElement;
const signout = document.getElementById('signout') as HTMLButtonElement;

/** Tiny element builder: h('div.cls', {text}, children). */
function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: { cls?: string; text?: string; title?: string } = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props.cls) el.className = props.cls;
  if (props.text !== undefined) el.textContent = props.text;
  if (props.title) el.title = props.title;
  el.append(...children);
  return el;
}

const badge = (status: string) => h('span', { cls: `badge st-${status}`, text: status });

function fmtMs(ms: number | null | undefined): string {
  if (ms == null) return '';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} m ${Math.round((ms % 60_000) / 1000)} s`;
}

/** Whatever the current view must stop (sockets, timers) when the route changes. */
let teardown: () => void = () => undefined;

function route(): void {
  teardown();
  teardown = () => undefined;
  main.replaceChildren();
  if (!getToken()) return showLogin();
  signout.hidden = false;
  const m = /^#\/x\/([0-9a-f-]{36})$/i.exec(location.hash);
  if (m) return showExecution(m[1]);
  showList();
}

function showLogin(message?: string): void {
  signout.hidden = true;
  const input = h('input');
  input.type = 'password';
  input.autocomplete = 'off';
  input.placeholder = 'service token';
  input.id = 'token';
  const button = h('button', { text: 'Open' });
  button.type = 'submit';
  const form = h(
    'form',
    { cls: 'login' },
    h('label', { text: 'Service token (kept in this tab only, sent as a header)' }),
    input,
    button,
  );
  if (message) form.append(h('div', { cls: 'error', text: message }));
  form.addEventListener('submit', (e) => {
    e.preventDefault(); // never a submission: the token must not become a URL
    const token = input.value.trim();
    if (!token) return;
    setToken(token);
    route();
  });
  main.append(form);
  input.focus();
}

whenRefused(() => {
  clearToken();
  teardown();
  teardown = () => undefined;
  main.replaceChildren();
  showLogin('The service refused this token.');
});
signout.addEventListener('click', () => {
  clearToken();
  route();
});

/* ---------- list ---------- */

function showList(): void {
  const status = h('select');
  status.id = 'filter-status';
  status.append(new Option('any status', ''));
  for (const s of EXECUTION_STATUSES) status.append(new Option(s, s));
  const server = h('select');
  server.id = 'filter-server';
  server.append(new Option('any server', ''));
  const note = h('span', { cls: 'muted' });
  const tbody = h('tbody');
  const more = h('button', { text: 'Older…' });
  more.hidden = true;
  const table = h(
    'table',
    { cls: 'list' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ...['created', 'name', 'status', 'targets', 'id'].map((t) => h('th', { text: t })),
      ),
    ),
    tbody,
  );
  table.id = 'executions';
  main.append(
    h('div', { cls: 'toolbar' }, h('strong', { text: 'Executions' }), status, server, note),
    h('div', { cls: 'list-wrap' }, table, more),
  );

  api<{ id: string; name: string }[]>('/v1/servers')
    .then((servers) => {
      for (const s of servers) server.append(new Option(s.name, s.id));
    })
    .catch(() => undefined);

  let cursor: string | null = null;
  let pages = 1;
  const query = (c?: string | null) => {
    const q = new URLSearchParams({ limit: '25' });
    if (status.value) q.set('status', status.value);
    if (server.value) q.set('serverId', server.value);
    if (c) q.set('cursor', c);
    return `/v1/executions?${q}`;
  };
  const row = (e: Execution) => {
    const s = e.summary;
    const tr = h(
      'tr',
      {},
      h('td', { text: new Date(e.createdAt).toLocaleString() }),
      h('td', { text: e.name ?? '' }),
      h('td', {}, badge(e.status)),
      h('td', { text: `${s.succeeded}/${s.total} ok${s.failed ? `, ${s.failed} failed` : ''}` }),
      h('td', { cls: 'muted', text: e.id.slice(0, 8) }),
    );
    tr.dataset.id = e.id;
    tr.addEventListener('click', () => (location.hash = `#/x/${e.id}`));
    return tr;
  };
  const load = async (append: boolean) => {
    try {
      const page = await api<{ items: Execution[]; nextCursor: string | null }>(
        query(append ? cursor : null),
      );
      if (!append) tbody.replaceChildren();
      tbody.append(...page.items.map(row));
      cursor = page.nextCursor;
      more.hidden = !cursor;
      note.textContent = tbody.children.length ? '' : 'no executions';
      note.className = 'muted';
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) {
        note.textContent = String((e as Error).message);
        note.className = 'error';
      }
    }
  };
  const reload = () => {
    pages = 1;
    void load(false);
  };
  status.addEventListener('change', reload);
  server.addEventListener('change', reload);
  more.addEventListener('click', () => {
    pages++;
    void load(true);
  });
  reload();
  // New executions show up without a reload while only the first page is shown.
  const timer = setInterval(() => pages === 1 && void load(false), 3000);
  teardown = () => clearInterval(timer);
}

/* ---------- one execution ---------- */

const CELL_W = 172;
const CELL_H = 58;
const PHASES: [keyof Phases, string][] = [
  ['connectMs', 'connect'],
  ['deployMs', 'deploy'],
  ['tunnelMs', 'tunnel'],
  ['runMs', 'run'],
];
/** What a `result` update carries that the grid shows. */
const RESULT_FIELDS = [
  'status',
  'exitCode',
  'startedAt',
  'finishedAt',
  'durationMs',
  'phases',
  'error',
];
/** A target in one of these has ended: its cell no longer ticks. */
const FINAL = new Set<string>(TERMINAL_TARGET_STATUSES);
const ENDED = new Set<string>(FINAL_EXECUTION_STATUSES);

function showExecution(id: string): void {
  const title = h('h2', { text: 'execution' });
  const status = h('span');
  status.id = 'exec-status';
  const counts = h('span', { cls: 'counts' });
  const note = h('span', { cls: 'muted' });
  const legend = h('span', { cls: 'legend muted' });
  for (const [, name] of PHASES) legend.append(h('i', { cls: `ph-${name}` }), name);
  const back = h('a', { text: '← executions' });
  back.href = '#/';
  const gridEl = h('div', { cls: 'grid' });
  gridEl.id = 'grid';
  const split = h('div', { cls: 'split' }, gridEl);
  main.append(h('div', { cls: 'exec-head' }, back, title, status, counts, legend, note), split);

  let exec: Execution | undefined;
  let selected: string | undefined;
  const byServer = new Map<string, number>();
  const now = () => Date.now();

  const grid = new Windowed<Target>(gridEl, {
    rowHeight: CELL_H,
    cellWidth: CELL_W,
    gap: 8,
    make: () => {
      const el = h('div', { cls: 'cell' });
      el.append(
        h('div', { cls: 'name' }),
        h('div', { cls: 'meta' }, h('span', { cls: 'status' }), h('span', { cls: 'dur' })),
        h('div', { cls: 'phases' }),
      );
      return el;
    },
    key: (t) => `${t.v}|${t.serverId === selected}|${FINAL.has(t.status) ? '' : tick}`,
    paint: (el, t) => {
      el.className = `cell st-${t.status}${t.serverId === selected ? ' selected' : ''}`;
      el.dataset.serverId = t.serverId;
      const [name, meta, bar] = el.children as unknown as HTMLElement[];
      name.textContent = t.serverName;
      name.title = t.serverName;
      meta.children[0].textContent = t.status.replace('_', ' ');
      meta.children[1].textContent =
        t.durationMs != null
          ? fmtMs(t.durationMs)
          : t.startedAt
            ? fmtMs(now() - Date.parse(t.startedAt))
            : '';
      paintPhases(bar, t);
    },
  });

  /** Running targets show their elapsed time: repaint them once a second. */
  let tick = 0;
  const timer = setInterval(() => {
    tick++;
    grid.schedule();
  }, 1000);

  gridEl.addEventListener('click', (e) => {
    const cell = (e.target as HTMLElement).closest<HTMLElement>('.cell');
    const t = cell && exec?.targets[Number(cell.dataset.index)];
    if (t) openLog(t);
  });

  const paintHead = () => {
    if (!exec) return;
    title.textContent = exec.name ?? exec.id;
    status.replaceChildren(badge(exec.status));
    const s = exec.summary;
    counts.textContent =
      `${s.total} targets · ${s.succeeded} succeeded · ${s.failed} failed` +
      (s.timedOut ? ` · ${s.timedOut} timed out` : '') +
      (s.cancelled ? ` · ${s.cancelled} cancelled` : '') +
      (s.skipped ? ` · ${s.skipped} skipped` : '');
  };

  const apply = (batch: Update[]) => {
    if (!exec) return;
    for (const u of batch) {
      if (u.type === 'summary') {
        exec.status = u.status;
        exec.summary = {
          total: u.total,
          succeeded: u.succeeded,
          failed: u.failed,
          timedOut: u.timedOut,
          cancelled: u.cancelled,
          skipped: u.skipped,
        };
        continue;
      }
      const i = u.serverId ? byServer.get(u.serverId) : undefined;
      if (i === undefined) continue;
      const t = exec.targets[i];
      if (u.type === 'status') {
        t.status = u.status;
        if (u.status === 'connecting' && !t.startedAt) t.startedAt = u.ts;
        if (exec.status === 'queued') exec.status = 'running';
        t.v++;
      } else if (u.type === 'result') {
        for (const k of RESULT_FIELDS) if (k in u) (t as any)[k] = u[k];
        t.v++;
      }
    }
    recount();
    paintHead();
    grid.render();
  };

  /** The counts as the grid shows them, until the summary event gives the final ones. */
  const recount = () => {
    if (!exec || ENDED.has(exec.status)) return;
    exec.summary = { ...summarize(exec.targets.map((t) => t.status as TargetStatus)) };
  };

  let feed: LiveFeed | undefined;
  let log: LogPanel | undefined;
  const openLog = (t: Target) => {
    log?.close();
    selected = t.serverId;
    log = new LogPanel(id, t, () => {
      log = undefined;
      selected = undefined;
      grid.render();
    });
    split.append(log.el);
    grid.render();
  };

  api<Execution>(`/v1/executions/${encodeURIComponent(id)}`)
    .then((e) => {
      exec = e;
      e.targets.forEach((t, i) => {
        t.v = 0;
        byServer.set(t.serverId, i);
      });
      paintHead();
      grid.setItems(e.targets);
      // Every event from seq 1: the replay brings the grid to now, then it goes live.
      feed = new LiveFeed(id, undefined, apply, (m) => (note.textContent = m));
    })
    .catch((e) => {
      if (!(e instanceof ApiError && e.status === 401)) {
        note.textContent = String((e as Error).message);
        note.className = 'error';
      }
    });

  teardown = () => {
    clearInterval(timer);
    feed?.close();
    log?.close();
  };
}

function paintPhases(bar: HTMLElement, t: Target): void {
  const p = t.phases;
  const total = p ? PHASES.reduce((sum, [k]) => sum + (p[k] ?? 0), 0) : 0;
  if (bar.children.length !== PHASES.length) {
    bar.replaceChildren(...PHASES.map(([, name]) => h('i', { cls: `ph-${name}` })));
  }
  const titles: string[] = [];
  PHASES.forEach(([k, name], i) => {
    const ms = p?.[k] ?? 0;
    (bar.children[i] as HTMLElement).style.width = total ? `${(100 * ms) / total}%` : '0';
    if (p?.[k] != null) titles.push(`${name} ${fmtMs(ms)}`);
  });
  bar.title = titles.join(' · ') || 'phases appear when the target has finished';
}

/* ---------- a target's log ---------- */

interface Line {
  stream: string;
  text: string;
}

/** Lines kept per open log; older ones are dropped (the REST API has them all). */
const MAX_LINES = 100_000;

class LogPanel {
  readonly el: HTMLElement;
  private readonly feed: LiveFeed;
  private readonly lines: Line[] = [];
  private readonly view: Windowed<Line>;
  private readonly info: HTMLElement;
  private dropped = 0;

  constructor(executionId: string, target: Target, onClose: () => void) {
    const close = h('button', { text: '×', title: 'close' });
    close.type = 'button';
    this.info = h('span', { cls: 'muted' });
    const viewEl = h('div', { cls: 'log-view' });
    this.el = h(
      'section',
      { cls: 'log' },
      h(
        'header',
        {},
        h('strong', { text: target.serverName }),
        this.info,
        h('span', { cls: 'spacer' }),
        close,
      ),
      viewEl,
    );
    this.el.id = 'log';
    close.addEventListener('click', () => {
      this.close();
      onClose();
    });
    this.view = new Windowed<Line>(viewEl, {
      rowHeight: 18,
      make: () => h('div', { cls: 'line' }, h('span', { cls: 'tag' }), h('span', { cls: 'text' })),
      key: () => String(this.dropped), // dropping old lines shifts every index
      paint: (el, line) => {
        el.className = `line ${line.stream}`;
        el.children[0].textContent =
          line.stream === 'stdout' ? '' : line.stream === 'stderr' ? 'err' : 'sys';
        el.children[1].textContent = line.text;
      },
    });
    this.view.setItems(this.lines);
    this.feed = new LiveFeed(executionId, target.serverId, (batch) => this.append(batch));
  }

  private append(batch: Update[]): void {
    const follow = this.view.atBottom();
    for (const u of batch) {
      if (u.type === 'log') this.lines.push({ stream: u.stream, text: u.text });
    }
    if (this.lines.length > MAX_LINES) {
      const n = this.lines.length - MAX_LINES;
      this.lines.splice(0, n);
      this.dropped += n;
    }
    this.info.textContent =
      `${this.lines.length} lines` + (this.dropped ? ` (${this.dropped} older not shown)` : '');
    this.view.setItems(this.lines);
    if (follow) this.view.scrollToBottom();
  }

  close(): void {
    this.feed.close();
    this.el.remove();
  }
}

window.addEventListener('hashchange', route);
route();
