/** Where one target of an execution is; the last five are final. */
export const TARGET_STATUSES = [
  'queued',
  'connecting',
  'deploying',
  'running',
  'succeeded',
  'failed',
  'timed_out',
  'cancelled',
  'skipped',
] as const;

export type TargetStatus = (typeof TARGET_STATUSES)[number];

export const TERMINAL_TARGET_STATUSES: readonly TargetStatus[] = [
  'succeeded',
  'failed',
  'timed_out',
  'cancelled',
  'skipped',
];

/** Also the values `GET /v1/executions?status=` accepts. */
export const EXECUTION_STATUSES = [
  'queued',
  'running',
  'succeeded',
  'failed',
  'partial',
  'cancelled',
] as const;

export type ExecutionStatus = (typeof EXECUTION_STATUSES)[number];

/** An execution in one of these has ended for good. */
export const FINAL_EXECUTION_STATUSES: readonly ExecutionStatus[] = [
  'succeeded',
  'failed',
  'partial',
  'cancelled',
];
