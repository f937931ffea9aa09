export const SCRIPT_TYPES = ['bash', 'python', 'node'] as const;

export type ScriptType = (typeof SCRIPT_TYPES)[number];

/** `auto` tries the helper API over a tunnel and falls back to bundled files. */
export const HELPER_MODES = ['auto', 'api', 'bundled'] as const;

export type HelperMode = (typeof HELPER_MODES)[number];

/** The mode a target actually ran with, once `auto` has been decided. */
export type ResolvedHelperMode = Exclude<HelperMode, 'auto'>;

/** `batch` of a job: `size` a count or "N%" of the targets. */
export interface BatchRequest {
  size: number | string;
  maxFailPercentage: number | null;
  pauseSeconds: number;
}

/** How a job's script is run as another user (`become`); `sudo` is the only method. */
export interface Become {
  user: string;
  method: 'sudo';
}

/** What the execution was asked to do, minus secrets: env values, input and script stay in memory. */
export interface ExecutionRequestSummary {
  scriptType: ScriptType;
  scriptBytes: number;
  envNames: string[];
  timeoutSeconds: number;
  helperMode: HelperMode;
  /** Absent on executions stored before `become` existed. */
  become?: Become | null;
  concurrency: number;
  maxErrors: number | string | null;
  failFast: boolean;
  /** Rolling batches as asked (absent or null: one batch of every target). */
  batch?: BatchRequest | null;
  targets: { serverIds?: string[]; tags?: string[] };
}
