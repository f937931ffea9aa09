import type { BatchRequest } from './request';
import type { TargetStatus } from './statuses';

/** Targets per batch: a count as it is, "N%" of `total` rounded up; at least 1. */
export function resolveBatchSize(size: number | string, total: number): number {
  if (typeof size === 'number') return Math.max(1, size);
  return Math.max(1, Math.ceil((Number(size.slice(0, -1)) / 100) * total));
}

/** The batch (1-based) of the target at `position` (0-based, the execution's order). */
export function batchOf(position: number, size: number): number {
  return Math.floor(position / size) + 1;
}

/** The batches of a job's targets in order, or nulls when the job has none. */
export function batchNumbers(batch: BatchRequest | null | undefined, total: number) {
  if (!batch) return Array.from({ length: total }, () => null);
  const size = resolveBatchSize(batch.size, total);
  return Array.from({ length: total }, (_, position) => batchOf(position, size));
}

/** What counts against a batch's maxFailPercentage (as against maxErrors). */
export const isFailure = (s: TargetStatus) => s === 'failed' || s === 'timed_out';

/**
 * Why the batches after `batch` are skipped, or null when its failures stay within
 * `maxFailPercentage` (null: no limit). Only more than the limit stops the rest.
 */
export function batchHalt(
  batch: number,
  failures: number,
  total: number,
  maxFailPercentage: number | null,
): string | null {
  if (maxFailPercentage === null || total === 0) return null;
  const percent = (failures * 100) / total;
  if (percent <= maxFailPercentage) return null;
  const shown = Math.round(percent * 10) / 10;
  return (
    `batch ${batch}: ${failures} of ${total} targets failed (${shown}%), more than ` +
    `maxFailPercentage ${maxFailPercentage}%; the targets of later batches were skipped`
  );
}
