import type { ExecutionRequestSummary } from './request';
import type { ExecutionStatus, TargetStatus } from './statuses';

/** Times are epoch milliseconds throughout. */
export interface ExecutionRecord {
  id: string;
  name: string | null;
  jobId: string | null;
  eventId: string | null;
  userId: string | null;
  status: ExecutionStatus;
  idempotencyKey: string | null;
  request: ExecutionRequestSummary;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  /** The replica that drives it; another one takes it over once its heartbeat is stale. */
  ownerId: string | null;
  heartbeatAt: number | null;
  /** A caller asked to cancel it; whoever drives it (now or after a take-over) stops it. */
  cancelRequestedAt: number | null;
  /** sha256 of the request it was made from (an Idempotency-Key replay must match it). */
  requestHash: string | null;
  /** The execution this one re-runs (POST /v1/executions/:id/rerun); null for a new job. */
  rerunOf: string | null;
  /** Why targets were skipped when a rule stopped it early (a batch over its failure limit). */
  reason: string | null;
}

export interface TargetPhases {
  connectMs: number | null;
  deployMs: number | null;
  tunnelMs: number | null;
  runMs: number | null;
}

/** One server of an execution and, once it has finished, its result. */
export interface TargetRecord {
  /** Also the remote run directory's name. */
  id: string;
  executionId: string;
  position: number;
  serverId: string;
  serverName: string;
  status: TargetStatus;
  exitCode: number | null;
  signal: string | null;
  errorCode: string | null;
  errorMessage: string | null;
  helperMode: string | null;
  fallbackReason: string | null;
  output: unknown;
  condition: boolean | null;
  truncated: boolean;
  startedAt: number | null;
  finishedAt: number | null;
  phases: TargetPhases;
  /** The replica that runs (or ran) this target. */
  replicaId: string | null;
  /** API mode: the server-side port of its helper tunnel (a take-over forwards it again). */
  tunnelPort: number | null;
  /** API mode, python and node: the remote Unix socket its helpers use, besides the port. */
  tunnelSocket: string | null;
  /** Its rolling batch (1-based), in target order; null when the job has no `batch`. */
  batch: number | null;
}

export type ExecutionEventType = 'status' | 'log' | 'result' | 'summary' | 'end';
export const LOG_STREAMS = ['stdout', 'stderr', 'system'] as const;
export type LogStream = (typeof LOG_STREAMS)[number];

/**
 * One stored event of an execution. `seq` numbers all events (websocket replay);
 * `logSeq` numbers log entries only, gap-free, for the logs API.
 */
export interface ExecutionEventRecord {
  executionId: string;
  seq: number;
  type: ExecutionEventType;
  serverId: string | null;
  logSeq: number | null;
  stream: LogStream | null;
  ts: number;
  text: string | null;
  data: Record<string, unknown> | null;
  /** `log` only: the byte offset just past this entry in its stream (re-attach resumes there). */
  byteOffset: number | null;
}
