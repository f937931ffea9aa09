import { Injectable, Optional } from '@nestjs/common';
import { InjectMetric } from '@willsoto/nestjs-prometheus';
import { Counter, Gauge, Histogram, register, Registry } from 'prom-client';
import { AppConfig } from '../config/app-config';
import { METRICS as M, standaloneMetric } from './metric-definitions';

/**
 * prom-client's default process metrics that promtool rejects: gauges with a counter's
 * `_total` suffix. Each is the sum of the by-type gauge without the suffix
 * (`nodejs_active_handles{type}` and so on), which stays.
 */
const MISNAMED_DEFAULT_METRICS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/**
 * The `cronium_` metrics the rest of the code counts with, one property per metric of
 * METRICS. Each is the @willsoto/nestjs-prometheus provider of that name, injected; built
 * with `new MetricsService()` (unit specs, no Nest) each comes from the same provider
 * factory, so the same metric. Every series carries `replica_id`, so the replicas of a
 * cluster can be told apart (and summed).
 */
@Injectable()
export class MetricsService {
  /** prom-client's default registry, the one the package's providers and /metrics use. */
  readonly registry: Registry = register;

  constructor(
    @Optional() config?: AppConfig,
    @InjectMetric(M.executions.name)
    readonly executions: Counter<'status'> = standaloneMetric(M.executions.name),
    @InjectMetric(M.targets.name)
    readonly targets: Counter<'status'> = standaloneMetric(M.targets.name),
    @InjectMetric(M.executionDuration.name)
    readonly executionDuration: Histogram = standaloneMetric(M.executionDuration.name),
    @InjectMetric(M.phaseDuration.name)
    readonly phaseDuration: Histogram<'phase'> = standaloneMetric(M.phaseDuration.name),
    @InjectMetric(M.activeExecutions.name)
    readonly activeExecutions: Gauge = standaloneMetric(M.activeExecutions.name),
    @InjectMetric(M.runnerDeployments.name)
    readonly runnerDeployments: Counter<'result'> = standaloneMetric(M.runnerDeployments.name),
    @InjectMetric(M.runnerCache.name)
    readonly runnerCache: Counter<'result'> = standaloneMetric(M.runnerCache.name),
    @InjectMetric(M.sshConnections.name)
    readonly sshConnections: Gauge = standaloneMetric(M.sshConnections.name),
    @InjectMetric(M.sshChannels.name)
    readonly sshChannels: Gauge = standaloneMetric(M.sshChannels.name),
    @InjectMetric(M.sshJumpConnections.name)
    readonly sshJumpConnections: Counter = standaloneMetric(M.sshJumpConnections.name),
    @InjectMetric(M.sshJumpConnectionsActive.name)
    readonly sshJumpConnectionsActive: Gauge = standaloneMetric(M.sshJumpConnectionsActive.name),
    @InjectMetric(M.sshTunnelsOpen.name)
    readonly sshTunnelsOpen: Gauge = standaloneMetric(M.sshTunnelsOpen.name),
    @InjectMetric(M.sshJumpTunnels.name)
    readonly sshJumpTunnels: Counter<'result'> = standaloneMetric(M.sshJumpTunnels.name),
    @InjectMetric(M.sshConnectFailures.name)
    readonly sshConnectFailures: Counter<'code'> = standaloneMetric(M.sshConnectFailures.name),
    @InjectMetric(M.helperCalls.name)
    readonly helperCalls: Counter<'helper' | 'status'> = standaloneMetric(M.helperCalls.name),
    @InjectMetric(M.tunnels.name)
    readonly tunnels: Counter<'result' | 'reason'> = standaloneMetric(M.tunnels.name),
    @InjectMetric(M.websocketSubscribers.name)
    readonly websocketSubscribers: Gauge = standaloneMetric(M.websocketSubscribers.name),
    @InjectMetric(M.batches.name)
    readonly batches: Counter<'outcome'> = standaloneMetric(M.batches.name),
    @InjectMetric(M.becomeFailures.name)
    readonly becomeFailures: Counter = standaloneMetric(M.becomeFailures.name),
    @InjectMetric(M.breakerOpens.name)
    readonly breakerOpens: Counter = standaloneMetric(M.breakerOpens.name),
    @InjectMetric(M.reruns.name) readonly reruns: Counter<'only'> = standaloneMetric(M.reruns.name),
    @InjectMetric(M.notificationDeliveries.name)
    readonly notificationDeliveries: Counter<'result'> = standaloneMetric(
      M.notificationDeliveries.name,
    ),
    @InjectMetric(M.retentionDeleted.name)
    readonly retentionDeleted: Counter<'kind'> = standaloneMetric(M.retentionDeleted.name),
  ) {
    if (config) this.registry.setDefaultLabels({ replica_id: config.replicaId });
    for (const name of MISNAMED_DEFAULT_METRICS) this.registry.removeSingleMetric(name);
    this.zeroKnownLabels();
  }

  /** Every known label set of a labelled metric shows from the first scrape, at 0. */
  private zeroKnownLabels(): void {
    for (const [key, def] of Object.entries(M)) {
      const metric = this[key as keyof typeof M];
      for (const labels of 'known' in def ? def.known : []) {
        if (metric instanceof Histogram) metric.zero(labels);
        else if (metric instanceof Counter) metric.inc(labels, 0);
      }
    }
  }
}
