import { Module } from '@nestjs/common';
import { NotificationsModule } from '../notifications/notifications.module';
import { PersistenceModule } from '../persistence/persistence.module';
import { QueueModule } from '../queue/queue.module';
import { RunnerCacheModule } from '../runner-cache/runner-cache.module';
import { RuntimeHelpersModule } from '../runtime-helpers/runtime-helpers.module';
import { ServersModule } from '../servers/servers.module';
import { SshModule } from '../ssh/ssh.module';
import { StatusModule } from '../status/status.module';
import { ExecutorService } from './executor.service';

/** Single- and multi-server execution: fan-out, limits, budget, timeouts, cancellation. */
@Module({
  imports: [
    PersistenceModule,
    QueueModule,
    StatusModule,
    SshModule,
    ServersModule,
    RunnerCacheModule,
    RuntimeHelpersModule,
    NotificationsModule,
  ],
  providers: [ExecutorService],
  exports: [ExecutorService],
})
export class ExecutorModule {}
