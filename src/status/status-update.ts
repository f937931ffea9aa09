import { targetView } from '../executions/execution-view';
import type { ExecutionEventRecord, TargetRecord } from '../executions/records';
import type { ExecutionEvent } from './execution-event';

/** `data` of a server → client `update` message (SPEC §4 "Websocket /v1/status"). */
export interface StatusUpdate {
  executionId: string;
  seq: number;
  type: ExecutionEvent['type'] | 'lagged';
  /** ISO 8601 */
  ts: string;
  [key: string]: unknown;
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Maps one execution event (live, or read back from the database) to the wire shape:
 * - `status`:  serverId, status (the target's)
 * - `log`:     serverId, stream, text
 * - `result`:  serverId + the target record, shaped like a target of GET /v1/executions/:id
 * - `summary`: status (the execution's) + the counts
 * - `end`
 */
export function toUpdate(e: ExecutionEvent): StatusUpdate {
  const base = { executionId: e.executionId, seq: e.seq, type: e.type, ts: iso(e.ts) };
  switch (e.type) {
    case 'status': {
      const batch = e.data?.batch;
      const inBatch = typeof batch === 'number' ? { batch } : {};
      return { ...base, serverId: e.serverId ?? null, status: e.status ?? null, ...inBatch };
    }
    case 'log':
      return { ...base, serverId: e.serverId ?? null, stream: e.stream, text: e.text ?? '' };
    case 'result': {
      const record = targetView((e.data ?? {}) as unknown as TargetRecord);
      return { ...base, ...record, serverId: e.serverId ?? record.serverId ?? null, ...base };
    }
    case 'summary':
      return { ...base, status: e.status ?? null, ...(e.data ?? {}), ...base };
    case 'end':
    default:
      return base;
  }
}

const wireCache = new WeakMap<ExecutionEvent, string>();

/**
 * The serialized `update` message for an event. Live events are one object shared by
 * every subscriber, so each is serialized once, not once per subscriber.
 */
export function wireUpdate(e: ExecutionEvent): string {
  let s = wireCache.get(e);
  if (s === undefined) {
    s = JSON.stringify({ event: 'update', data: toUpdate(e) });
    wireCache.set(e, s);
  }
  return s;
}

/** The `lagged` notice: `seq` is the last event delivered, the `afterSeq` to resume from. */
export function laggedUpdate(executionId: string, seq: number): StatusUpdate {
  return { executionId, seq, type: 'lagged', ts: iso(Date.now()) };
}

/**
 * A stored row back to the event the executor emitted (EventWriter stores `status` inside
 * `data` for status and summary events).
 */
export function fromRow(r: ExecutionEventRecord): ExecutionEvent {
  const e: ExecutionEvent = {
    executionId: r.executionId,
    seq: Number(r.seq),
    type: r.type,
    ts: Number(r.ts),
    serverId: r.serverId,
  };
  if (r.type === 'log') {
    e.stream = r.stream ?? undefined;
    e.text = r.text ?? '';
    if (r.logSeq != null) e.logSeq = Number(r.logSeq);
  } else if (r.type === 'status' || r.type === 'summary') {
    const { status, ...rest } = (r.data ?? {}) as Record<string, unknown>;
    if (status !== undefined) e.status = String(status);
    e.data = rest;
  } else if (r.data) {
    e.data = r.data;
  }
  return e;
}

/** Rough wire size of an event, for the per-subscription byte budget. */
export function approxSize(e: ExecutionEvent): number {
  if (e.type === 'log') return 160 + (e.text?.length ?? 0);
  if (e.type === 'result') return 400 + JSON.stringify(e.data ?? {}).length;
  return 200;
}
