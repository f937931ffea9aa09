import { Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { MetricsService } from './metrics.service';

async function byLabel(
  metric: { get(): Promise<{ values: { labels: any; value: number }[] }> },
  label: string,
) {
  const out: Record<string, number> = {};
  for (const v of (await metric.get()).values)
    out[v.labels[label]] = (out[v.labels[label]] ?? 0) + v.value;
  return out;
}

const pct = (n: number, d: number) => (d === 0 ? 'n/a' : `${((100 * n) / d).toFixed(1)}%`);

/** A periodic one-line summary: success rate and runner cache hit rate since start. */
@Injectable()
export class MetricsLogService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Metrics');
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly config: AppConfig,
    private readonly metrics: MetricsService,
  ) {}

  onModuleInit(): void {
    const every = this.config.metrics.logIntervalSeconds;
    if (every > 0) {
      this.timer = setInterval(() => void this.logSummary(), every * 1000);
      this.timer.unref();
    }
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async summary(): Promise<string> {
    const targets = await byLabel(this.metrics.targets, 'status');
    const cache = await byLabel(this.metrics.runnerCache, 'result');
    const total = Object.values(targets).reduce((a, b) => a + b, 0);
    const lookups = (cache.hit ?? 0) + (cache.miss ?? 0) + (cache.stale ?? 0);
    return (
      `targets ${total}, success rate ${pct(targets.succeeded ?? 0, total)}; ` +
      `runner cache hit rate ${pct(cache.hit ?? 0, lookups)} (${lookups} lookups, ` +
      `${cache.vanished ?? 0} vanished); ssh connections ${(await this.metrics.sshConnections.get()).values[0]?.value ?? 0}`
    );
  }

  private async logSummary(): Promise<void> {
    this.logger.log(await this.summary());
  }
}
