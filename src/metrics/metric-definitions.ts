import { FactoryProvider } from '@nestjs/common';
import {
  makeCounterProvider,
  makeGaugeProvider,
  makeHistogramProvider,
} from '@willsoto/nestjs-prometheus';
import { Metric } from 'prom-client';
import { RERUN_SCOPES } from '../jobs/dto/rerun.dto';
import { FINAL_EXECUTION_STATUSES, TERMINAL_TARGET_STATUSES } from '../executions/statuses';
import { SWEPT_KINDS } from '../retention/retention.repository';

const DURATION_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800,
];

type Labels = Record<string, string>;

interface Definition {
  type: 'counter' | 'gauge' | 'histogram';
  name: string;
  help: string;
  labelNames?: string[];
  /** The label sets a scrape shows from the start, at 0 (the values the code can write). */
  known?: Labels[];
}

/** One label set per value: `each('status', ['a', 'b'])` is `[{status: 'a'}, {status: 'b'}]`. */
const each = (label: string, values: readonly string[]): Labels[] =>
  values.map((v) => ({ [label]: v }));

/**
 * Every `cronium_` metric: name, help, labels and the label values known in advance.
 * Labels are low-cardinality (status, phase, code): never a server id on a high-volume
 * series. The keys are the properties of MetricsService.
 */
export const METRICS = {
  executions: {
    type: 'counter',
    name: 'cronium_executions_total',
    help: 'Executions by final status',
    labelNames: ['status'],
    known: each('status', FINAL_EXECUTION_STATUSES),
  },
  targets: {
    type: 'counter',
    name: 'cronium_targets_total',
    help: 'Execution targets by final status',
    labelNames: ['status'],
    known: each('status', TERMINAL_TARGET_STATUSES),
  },
  executionDuration: {
    type: 'histogram',
    name: 'cronium_execution_duration_seconds',
    help: 'Execution wall time, submit to final status',
  },
  phaseDuration: {
    type: 'histogram',
    name: 'cronium_target_phase_duration_seconds',
    help: 'Per-target phase durations (connect, deploy, tunnel, run)',
    labelNames: ['phase'],
    known: each('phase', ['connect', 'deploy', 'tunnel', 'run']),
  },
  activeExecutions: {
    type: 'gauge',
    name: 'cronium_active_executions',
    help: 'Executions not yet finished',
  },
  runnerDeployments: {
    type: 'counter',
    name: 'cronium_runner_deployments_total',
    help: 'Runner deployments by result',
    labelNames: ['result'],
    known: each('result', ['success', 'failure']),
  },
  runnerCache: {
    type: 'counter',
    name: 'cronium_runner_cache_total',
    help: 'Runner cache lookups: hit, miss, stale (re-verified) or vanished',
    labelNames: ['result'],
    known: each('result', ['hit', 'miss', 'stale', 'vanished']),
  },
  sshConnections: {
    type: 'gauge',
    name: 'cronium_ssh_connections',
    help: 'Pooled SSH connections',
  },
  sshChannels: {
    type: 'gauge',
    name: 'cronium_ssh_channels',
    help: 'Channel slots in use on pooled connections',
  },
  sshJumpConnections: {
    type: 'counter',
    name: 'cronium_ssh_jump_connections_total',
    help: 'Connections opened to jump hosts, to tunnel to the servers behind them',
  },
  sshJumpConnectionsActive: {
    type: 'gauge',
    name: 'cronium_ssh_jump_connections',
    help: 'Pooled connections carrying at least one tunnel (jump hosts in use)',
  },
  sshTunnelsOpen: {
    type: 'gauge',
    name: 'cronium_ssh_jump_tunnels',
    help: 'Open tunnels through jump hosts (one per connection to a server behind one)',
  },
  sshJumpTunnels: {
    type: 'counter',
    name: 'cronium_ssh_jump_tunnels_total',
    help: 'Tunnels through jump hosts by result (opened, failed)',
    labelNames: ['result'],
    known: each('result', ['opened', 'failed']),
  },
  sshConnectFailures: {
    type: 'counter',
    name: 'cronium_ssh_connect_failures_total',
    help: 'Failed SSH connects by error code',
    labelNames: ['code'],
    known: each('code', ['connect_failed', 'auth_failed', 'host_key_mismatch']),
  },
  helperCalls: {
    // No known values: `status` is whatever HTTP status a call got.
    type: 'counter',
    name: 'cronium_helper_calls_total',
    help: 'Runtime-helper API calls by helper and HTTP status',
    labelNames: ['helper', 'status'],
  },
  tunnels: {
    type: 'counter',
    name: 'cronium_tunnels_total',
    help: 'Helper set-ups: api (tunnel opened, reason none), fallback (bundled instead, by reason), failed (by reason)',
    labelNames: ['result', 'reason'],
    known: [
      { result: 'api', reason: 'none' },
      { result: 'fallback', reason: 'tunnel' },
      { result: 'failed', reason: 'tunnel' },
      { result: 'failed', reason: 'connection_lost' },
    ],
  },
  websocketSubscribers: {
    type: 'gauge',
    name: 'cronium_websocket_subscribers',
    help: 'Active websocket subscriptions to execution status streams',
  },
  batches: {
    type: 'counter',
    name: 'cronium_batches_total',
    help: 'Rolling batches ended: passed, or halted (over maxFailPercentage: the rest skipped)',
    labelNames: ['outcome'],
    known: each('outcome', ['passed', 'halted']),
  },
  becomeFailures: {
    type: 'counter',
    name: 'cronium_become_failures_total',
    help: "Targets whose script sudo refused to run as the job's become.user (become_failed)",
  },
  breakerOpens: {
    type: 'counter',
    name: 'cronium_ssh_breaker_opens_total',
    help: 'Circuit-breaker openings',
  },
  reruns: {
    type: 'counter',
    name: 'cronium_execution_reruns_total',
    help: 'Executions started by POST /v1/executions/:id/rerun, by scope (failed or all)',
    labelNames: ['only'],
    known: each('only', RERUN_SCOPES),
  },
  notificationDeliveries: {
    type: 'counter',
    name: 'cronium_notification_deliveries_total',
    help: 'Completion notification attempts: delivered, retrying (will try again) or failed (gave up)',
    labelNames: ['result'],
    known: each('result', ['delivered', 'retrying', 'failed']),
  },
  retentionDeleted: {
    type: 'counter',
    name: 'cronium_retention_deleted_total',
    help: 'Rows the retention sweep deleted, by kind (executions, targets, events, notifications, notification_attempts)',
    labelNames: ['kind'],
    known: each('kind', SWEPT_KINDS),
  },
} satisfies Record<string, Definition>;

export type MetricKey = keyof typeof METRICS;

/** The package's provider of one metric (its makers are typed as any Provider; each is a factory). */
function providerOf(def: Definition): FactoryProvider {
  return maker(def) as FactoryProvider;
}

function maker(def: Definition) {
  const options = { name: def.name, help: def.help, labelNames: def.labelNames ?? [] };
  switch (def.type) {
    case 'counter':
      return makeCounterProvider(options);
    case 'gauge':
      return makeGaugeProvider(options);
    case 'histogram':
      return makeHistogramProvider({ ...options, buckets: DURATION_BUCKETS });
  }
}

const PROVIDERS = new Map<string, FactoryProvider>(
  Object.values(METRICS).map((def: Definition) => [def.name, providerOf(def)]),
);

/** The package's providers of every metric, one per name (token `PROM_METRIC_<NAME>`). */
export const metricProviders: FactoryProvider[] = [...PROVIDERS.values()];

/**
 * The metric a provider would give, for code built without Nest (unit specs): the same
 * factory, so the same metric in prom-client's default registry.
 */
export function standaloneMetric<M extends Metric>(name: string): M {
  const factory = PROVIDERS.get(name)?.useFactory as (options?: unknown) => M;
  return factory(undefined);
}
