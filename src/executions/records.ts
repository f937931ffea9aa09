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
}
