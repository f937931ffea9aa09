import type { ExecutionStatus, TargetStatus } from './statuses';

export interface Summary {
  total: number;
  succeeded: number;
  failed: number;
  timedOut: number;
  cancelled: number;
  skipped: number;
}

export function summarize(statuses: TargetStatus[]): Summary {
  const s: Summary = {
    total: statuses.length,
    succeeded: 0,
    failed: 0,
    timedOut: 0,
    cancelled: 0,
    skipped: 0,
  };
  for (const st of statuses) {
    if (st === 'succeeded') s.succeeded++;
    else if (st === 'failed') s.failed++;
    else if (st === 'timed_out') s.timedOut++;
    else if (st === 'cancelled') s.cancelled++;
    else if (st === 'skipped') s.skipped++;
  }
  return s;
}

/**
 * succeeded: every target succeeded; failed: none did; partial: some did;
 * cancelled: a caller cancelled the execution.
 */
export function executionStatus(summary: Summary, cancelledByCaller: boolean): ExecutionStatus {
  if (cancelledByCaller) return 'cancelled';
  if (summary.total > 0 && summary.succeeded === summary.total) return 'succeeded';
  if (summary.succeeded === 0) return 'failed';
  return 'partial';
}
