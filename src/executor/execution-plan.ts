import type { HelperMode, ScriptType } from '../executions/request';
import type { ExecutionRecord } from '../executions/records';
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
}

/** Everything needed to run an execution; secrets (env, script, input) stay in memory only. */
export interface ExecutionPlan {
  execution: ExecutionRecord;
  targets: TargetPlan[];
  script: { type: ScriptType; content: string };
  env: Record<string, string>;
  input: unknown;
  timeoutSeconds: number;
  helperMode: HelperMode;
  concurrency: number;
  /** Failures tolerated before not-yet-started targets are skipped; null = no budget. */
  maxErrors: number | null;
  failFast: boolean;
}
