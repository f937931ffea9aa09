import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { PersistenceModule } from '../persistence/persistence.module';
import { RunnerCacheModule } from '../runner-cache/runner-cache.module';
import { HealthController } from './health.controller';
import { LifecycleService } from './lifecycle.service';

/** Liveness and readiness probes (terminus). */
@Module({
  imports: [TerminusModule.forRoot({ logger: false }), PersistenceModule, RunnerCacheModule],
  controllers: [HealthController],
  providers: [LifecycleService],
  exports: [LifecycleService],
})
export class HealthModule {}
