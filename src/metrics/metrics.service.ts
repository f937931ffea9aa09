import { Injectable, Optional } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, register } from 'prom-client';

const DURATION_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800,
];

/**
 * All `cronium_` metrics in one place. Labels are low-cardinality (status, phase, code):
 * never a server id on a high-volume series. Every series carries `replica_id`, so the
 * replicas of a cluster can be told apart (and summed).
 */
@Injectable()
export class MetricsService {
  readonly registry: Registry = register;

  readonly executions = this.counter('cronium_executions_total', 'Executions by final status', [
    'status',
  ]);
  readonly targets = this.counter('cronium_targets_total', 'Execution targets by final status', [
    'status',
  ]);
  readonly executionDuration = this.histogram(
    'cronium_execution_duration_seconds',
    'Execution wall time, submit to final status',
    [],
  );
  readonly phaseDuration = this.histogram(
    'cronium_target_phase_duration_seconds',
    'Per-target phase durations (connect, deploy, tunnel, run)',
    ['phase'],
  );
  readonly activeExecutions = this.gauge(
    'cronium_active_executions',
    'Executions not yet finished',
  );
  readonly runnerDeployments = this.counter(
    'cronium_runner_deployments_total',
    'Runner deployments by result',
    ['result'],
  );
  readonly runnerCache = this.counter(
    'cronium_runner_cache_total',
    'Runner cache lookups: hit, miss, stale (re-verified) or vanished',
    ['result'],
  );
  readonly sshConnections = this.gauge('cronium_ssh_connections', 'Pooled SSH connections');
  readonly sshChannels = this.gauge(
    'cronium_ssh_channels',
    'Channel slots in use on pooled connections',
  );
  readonly sshJumpConnections = this.counter(
    'cronium_ssh_jump_connections_total',
    'Connections opened to jump hosts, to tunnel to the servers behind them',
  );
  readonly sshJumpConnectionsActive = this.gauge(
    'cronium_ssh_jump_connections',
    'Pooled connections carrying at least one tunnel (jump hosts in use)',
  );
  readonly sshTunnelsOpen = this.gauge(
    'cronium_ssh_jump_tunnels',
    'Open tunnels through jump hosts (one per connection to a server behind one)',
  );
  readonly sshJumpTunnels = this.counter(
    'cronium_ssh_jump_tunnels_total',
    'Tunnels through jump hosts by result (opened, failed)',
    ['result'],
  );
  readonly sshConnectFailures = this.counter(
    'cronium_ssh_connect_failures_total',
    'Failed SSH connects by error code',
    ['code'],
  );
  readonly helperCalls = this.counter(
    'cronium_helper_calls_total',
    'Runtime-helper API calls by helper and HTTP status',
    ['helper', 'status'],
  );
  readonly tunnels = this.counter(
    'cronium_tunnels_total',
    'Helper set-ups: api (tunnel opened), fallback (bundled instead, by reason), failed',
    ['result', 'reason'],
  );
  readonly websocketSubscribers = this.gauge(
    'cronium_websocket_subscribers',
    'Active websocket subscriptions to execution status streams',
  );
  readonly batches = this.counter(
    'cronium_batches_total',
    'Rolling batches ended: passed, or halted (over maxFailPercentage: the rest skipped)',
    ['outcome'],
  );
  readonly becomeFailures = this.counter(
    'cronium_become_failures_total',
    "Targets whose script sudo refused to run as the job's become.user (become_failed)",
  );
  readonly breakerOpens = this.counter(
    'cronium_ssh_breaker_opens_total',
    'Circuit-breaker openings',
  );
  readonly reruns = this.counter(
    'cronium_execution_reruns_total',
    'Executions started by POST /v1/executions/:id/rerun, by scope (failed or all)',
    ['only'],
  );

  readonly notificationDeliveries = this.counter(
    'cronium_notification_deliveries_total',
    'Completion notification attempts: delivered, retrying (will try again) or failed (gave up)',
    ['result'],
  );
  readonly retentionDeleted = this.counter(
    'cronium_retention_deleted_total',
    'Rows the retention sweep deleted, by kind (executions, targets, events, notifications, notification_attempts)',
    ['kind'],
  );

  constructor(@Optional() config?: AppConfig) {
    if (config) this.registry.setDefaultLabels({ replica_id: config.replicaId });
    // Process metrics (CPU, memory, event loop) once per registry.
    if (!this.registry.getSingleMetric('process_cpu_seconds_total'))
      collectDefaultMetrics({ register: this.registry });
  }

  private counter<L extends string>(name: string, help: string, labelNames: L[] = []) {
    return (
      (this.registry.getSingleMetric(name) as Counter<L>) ??
      new Counter<L>({ name, help, labelNames, registers: [this.registry] })
    );
  }

  private gauge<L extends string>(name: string, help: string, labelNames: L[] = []) {
    return (
      (this.registry.getSingleMetric(name) as Gauge<L>) ??
      new Gauge<L>({ name, help, labelNames, registers: [this.registry] })
    );
  }

  private histogram<L extends string>(name: string, help: string, labelNames: L[]) {
    return (
      (this.registry.getSingleMetric(name) as Histogram<L>) ??
      new Histogram<L>({
        name,
        help,
        labelNames,
        buckets: DURATION_BUCKETS,
        registers: [this.registry],
      })
    );
  }
}
