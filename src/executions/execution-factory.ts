import { randomUUID } from 'node:crypto';
import type { ExecutionRecord, TargetRecord } from './records';
import type { ExecutionRequestSummary } from './request';

/** What a new execution is told; the optional labels come from the job request. */
export interface NewExecution {
  name?: string;
  jobId?: string;
  eventId?: string;
  userId?: string;
  idempotencyKey?: string;
  requestHash?: string;
  request: ExecutionRequestSummary;
  /** Epoch milliseconds; now when absent. */
  createdAt?: number;
  /**
   * The replica that accepted it and drives it (it heartbeats from creation on); none when
   * a shared queue decides which replica drives it.
   */
  ownerId?: string;
  /** The execution it re-runs. */
  rerunOf?: string;
}

/** A queued execution with a fresh id: not started, nothing finished. */
export function newExecution(e: NewExecution): ExecutionRecord {
  return {
    id: randomUUID(),
    name: e.name ?? null,
    jobId: e.jobId ?? null,
    eventId: e.eventId ?? null,
    userId: e.userId ?? null,
    status: 'queued',
    idempotencyKey: e.idempotencyKey ?? null,
    request: e.request,
    createdAt: e.createdAt ?? Date.now(),
    startedAt: null,
    finishedAt: null,
    ownerId: e.ownerId ?? null,
    heartbeatAt: e.ownerId ? (e.createdAt ?? Date.now()) : null,
    cancelRequestedAt: null,
    requestHash: e.requestHash ?? null,
    rerunOf: e.rerunOf ?? null,
    reason: null,
  };
}

/**
 * A queued target with a fresh id (which also names its remote run directory) for one
 * server, at `position` in the execution's order; no phase timed, no result yet.
 */
export function newTarget(
  executionId: string,
  position: number,
  server: { id: string; name: string },
  batch: number | null = null,
): TargetRecord {
  return {
    id: randomUUID(),
    executionId,
    position,
    serverId: server.id,
    serverName: server.name,
    status: 'queued',
    exitCode: null,
    signal: null,
    errorCode: null,
    errorMessage: null,
    helperMode: null,
    fallbackReason: null,
    output: null,
    condition: null,
    truncated: false,
    startedAt: null,
    finishedAt: null,
    phases: { connectMs: null, deployMs: null, tunnelMs: null, runMs: null },
    replicaId: null,
    tunnelPort: null,
    tunnelSocket: null,
    batch,
  };
}
