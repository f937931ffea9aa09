import type { LogStream } from '../executions/records';

export type ExecutionEventType = 'status' | 'log' | 'result' | 'summary' | 'end';

/** One event of an execution, as stored and as sent to websocket subscribers. */
export interface ExecutionEvent {
  executionId: string;
  /** Per-execution, gap-free across all event types. */
  seq: number;
  type: ExecutionEventType;
  ts: number;
  serverId?: string | null;
  /** `status`: the target's new status; `summary`: the execution's status. */
  status?: string;
  /** `log` only */
  stream?: LogStream;
  text?: string;
  /** `log` only: gap-free among the execution's log entries. */
  logSeq?: number;
  /** `log` of stdout/stderr only: the byte offset just past this entry in its stream. */
  offset?: number;
  /** `result`: the target record; `summary`: counts. */
  data?: Record<string, unknown>;
}

export type EmittedEvent = Omit<ExecutionEvent, 'seq' | 'ts' | 'logSeq' | 'executionId'>;
