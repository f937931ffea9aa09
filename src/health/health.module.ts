import { Global, Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { RunnerCacheModule } from '../runner-cache/runner-cache.module';
import { HealthController } from './health.controller';
import { LifecycleService } from './lifecycle.service';

/** Liveness and readiness probes (terminus). */
@Global()
@Module({
  imports: [TerminusModule.forRoot({ logger: false }), RunnerCacheModule],
  controllers: [HealthController],
  providers: [LifecycleService],
  exports: [LifecycleService],
})
export class HealthModule {}
