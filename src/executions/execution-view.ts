import { summarize } from './aggregate';
import type { ExecutionRecord, TargetRecord } from './records';

const iso = (ms: number | null) => (ms == null ? null : new Date(ms).toISOString());

export function targetView(t: TargetRecord) {
  return {
    serverId: t.serverId,
    serverName: t.serverName,
    status: t.status,
    exitCode: t.exitCode,
    signal: t.signal,
    ...(t.errorCode ? { error: { code: t.errorCode, message: t.errorMessage ?? '' } } : {}),
    helperMode: t.helperMode,
    ...(t.fallbackReason ? { fallbackReason: t.fallbackReason } : {}),
    output: t.output ?? null,
    condition: t.condition,
    truncated: !!t.truncated,
    startedAt: iso(t.startedAt),
    finishedAt: iso(t.finishedAt),
    durationMs: t.startedAt != null && t.finishedAt != null ? t.finishedAt - t.startedAt : null,
    phases: t.phases,
    replicaId: t.replicaId ?? null,
    ...(t.batch != null ? { batch: t.batch } : {}),
  };
}

/** The execution as the API shows it (spec §4); never env values, input or the script. */
export function executionView(e: ExecutionRecord, targets: TargetRecord[]) {
  return {
    id: e.id,
    name: e.name,
    jobId: e.jobId,
    eventId: e.eventId,
    userId: e.userId,
    rerunOf: e.rerunOf ?? null,
    status: e.status,
    createdAt: iso(e.createdAt),
    startedAt: iso(e.startedAt),
    finishedAt: iso(e.finishedAt),
    ...(e.reason ? { reason: e.reason } : {}),
    summary: summarize(targets.map((t) => t.status)),
    targets: targets.map(targetView),
  };
}

export type ExecutionView = ReturnType<typeof executionView>;
