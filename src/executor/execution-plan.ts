import type { Become, HelperMode, ScriptType } from '../executions/request';
import type { ExecutionRecord } from '../executions/records';
import type { TargetStatus } from '../executions/statuses';
import type { SshEndpoint } from '../ssh/ssh.types';

/** One server of an execution: who it is and how to reach it (credentials fetched late). */
export interface TargetPlan {
  targetId: string;
  position: number;
  serverId: string;
  serverName: string;
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
  /** Targets that had already failed before a take-over (they count against maxErrors). */
  priorFailures: number;
  /**
   * The final statuses of the targets that had ended before this plan was made (a
   * take-over): with those of `targets`, the execution's summary, without reading it back.
   */
  ended?: TargetStatus[];
}
