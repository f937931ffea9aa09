import { Module } from '@nestjs/common';
import { ExecutorModule } from '../executor/executor.module';
import { NotificationsModule } from '../notifications/notifications.module';
import { PersistenceModule } from '../persistence/persistence.module';
import { ServersModule } from '../servers/servers.module';
import { StatusModule } from '../status/status.module';
import { ExecutionsController } from './executions.controller';
import { JobsController } from './jobs.controller';
import { JobsService } from './jobs.service';

/** REST API for jobs and executions. */
@Module({
  imports: [PersistenceModule, ServersModule, ExecutorModule, StatusModule, NotificationsModule],
  controllers: [JobsController, ExecutionsController],
  providers: [JobsService],
  exports: [JobsService],
})
export class JobsModule {}
