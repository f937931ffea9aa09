import type { BatchRequest, Become, HelperMode, ScriptType } from '../executions/request';
import type { ExecutionRecord } from '../executions/records';
import type { TargetStatus } from '../executions/statuses';
import type { SshEndpoint } from '../ssh/ssh.types';

/** One server of an execution: who it is and how to reach it (credentials fetched late). */
export interface TargetPlan {
  targetId: string;
  position: number;
  serverId: string;
  serverName: string;
  /** Its rolling batch (1-based); null or absent without one. */
  batch?: number | null;
  baseDir: string;
  /** Fetches this server's own endpoint (decrypted credentials) when the target starts. */
  endpoint: () => Promise<SshEndpoint>;
  /** Set when the execution was taken over and this target may already run; else a start. */
  resume?: TargetResume;
}

/** How a target goes on after a take-over (a restart, a dead replica, a re-delivery). */
export type TargetResume = {
  helperMode: string | null;
  /** API mode: the tunnel port the script's endpoint names (forwarded again). */
  tunnelPort: number | null;
  /** API mode, python and node: the Unix socket its helpers use (CRONIUM_API_SOCKET). */
  tunnelSocket: string | null;
  /** What the script had handed its helpers before the take-over. */
  results: { output: unknown; condition: boolean | null };
} & (
  | /** It was starting: the run may exist on the server (attach) or not (start). */
  { how: 'probe' }
  /** It was running: attach from the offsets of its stored log entries. */
  | { how: 'attach'; startedAt: number }
);

/**
 * Everything needed to run an execution. Script, env and input are kept in memory, and in
 * the database only sealed (sealed-job.ts) until the execution ends.
 */
export interface ExecutionPlan {
  execution: ExecutionRecord;
  targets: TargetPlan[];
  script: { type: ScriptType; content: string };
  env: Record<string, string>;
  input: unknown;
  timeoutSeconds: number;
  helperMode: HelperMode;
  /** Run the script as another user (sudo); null: as the SSH user. */
  become?: Become | null;
  concurrency: number;
  /** Failures tolerated before not-yet-started targets are skipped; null = no budget. */
  maxErrors: number | null;
  failFast: boolean;
  /** Rolling batches; null or absent: every target in one go. */
  batch?: BatchPlan | null;
  /**
   * Whether the job has a completion notification (`notify`): false spares its end a
   * wake-up of the notifier; absent (a plan read back after a take-over): unknown.
   */
  hasNotify?: boolean;
  /** Targets that had already failed before a take-over (they count against maxErrors). */
  priorFailures: number;
  /**
   * The final statuses of the targets that had ended before this plan was made (a
   * take-over): with those of `targets`, the execution's summary, without reading it back.
   */
  ended?: TargetStatus[];
}

/** How the batches of an execution run, over all of its targets (ended ones too). */
export interface BatchPlan {
  maxFailPercentage: number | null;
  pauseSeconds: number;
  /** Targets per batch: `totals[b - 1]` for batch b. */
  totals: number[];
  /** Failures per batch before a take-over, as totals. */
  priorFailures: number[];
  /** Per batch, when its last target that had ended before a take-over ended (or null). */
  endedAt: (number | null)[];
}

/**
 * The batch plan of a job's `batch` over its targets' batch numbers, with what had
 * ended of each target before a take-over (`before`; none for a new execution).
 */
export function batchPlan(
  batch: BatchRequest | null | undefined,
  numbers: (number | null)[],
  before: { failed: boolean; finishedAt: number | null }[] = [],
): BatchPlan | null {
  if (!batch) return null;
  const count = Math.max(0, ...numbers.map((n) => n ?? 0));
  const plan: BatchPlan = {
    maxFailPercentage: batch.maxFailPercentage,
    pauseSeconds: batch.pauseSeconds,
    totals: Array.from({ length: count }, () => 0),
    priorFailures: Array.from({ length: count }, () => 0),
    endedAt: Array.from({ length: count }, () => null),
  };
  numbers.forEach((n, i) => {
    if (n == null) return;
    plan.totals[n - 1]++;
    if (before[i]?.failed) plan.priorFailures[n - 1]++;
    const at = before[i]?.finishedAt ?? null;
    if (at !== null) plan.endedAt[n - 1] = Math.max(plan.endedAt[n - 1] ?? 0, at);
  });
  return plan;
}
