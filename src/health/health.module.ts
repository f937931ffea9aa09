import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { ExecutorModule } from '../executor/executor.module';
import { JobsModule } from '../jobs/jobs.module';
import { PersistenceModule } from '../persistence/persistence.module';
import { QueueModule } from '../queue/queue.module';
import { RunnerCacheModule } from '../runner-cache/runner-cache.module';
import { HealthController } from './health.controller';
import { LifecycleService } from './lifecycle.service';
import { ShutdownService } from './shutdown.service';

/** Liveness and readiness probes (terminus), and the graceful shutdown that drains them. */
@Module({
  imports: [
    TerminusModule.forRoot({ logger: false }),
    PersistenceModule,
    QueueModule,
    RunnerCacheModule,
    JobsModule,
    ExecutorModule,
  ],
  controllers: [HealthController],
  providers: [LifecycleService, ShutdownService],
})
export class HealthModule {}
