import { Global, Module } from '@nestjs/common';
import { MetricsController } from './metrics.controller';
import { MetricsLogService } from './metrics-log.service';
import { MetricsService } from './metrics.service';

/** Prometheus metrics (prefix `cronium_`); global so every module can count. */
@Global()
@Module({
  controllers: [MetricsController],
  providers: [MetricsService, MetricsLogService],
  exports: [MetricsService],
})
export class MetricsModule {}
