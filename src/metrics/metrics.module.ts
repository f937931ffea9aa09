import { Global, Module } from '@nestjs/common';
import { PrometheusModule } from '@willsoto/nestjs-prometheus';
import { metricProviders } from './metric-definitions';
import { MetricsController } from './metrics.controller';
import { MetricsLogService } from './metrics-log.service';
import { MetricsService } from './metrics.service';

/** Prometheus metrics (prefix `cronium_`); global so every module can count. */
@Global()
@Module({
  imports: [
    PrometheusModule.register({
      path: '/metrics',
      controller: MetricsController,
      // prom-client's process metrics (CPU, memory, event loop); MetricsService drops the
      // three that promtool rejects.
      defaultMetrics: { enabled: true },
    }),
  ],
  providers: [...metricProviders, MetricsService, MetricsLogService],
  exports: [MetricsService],
})
export class MetricsModule {}
