import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { PersistenceModule } from '../persistence/persistence.module';
import { QueueModule } from '../queue/queue.module';
import { EventWriter } from './event-writer.service';
import { ExecutionEventsService } from './execution-events.service';
import { ReplicaFanout } from './replica-fanout';
import { StatusGateway } from './status.gateway';

/**
 * RxJS streams of execution events, their persistence, and their fan-out to the other
 * replicas. The websocket gateway `/v1/status` serves them.
 */
@Module({
  imports: [AuthModule, PersistenceModule, QueueModule],
  providers: [ExecutionEventsService, EventWriter, StatusGateway, ReplicaFanout],
  exports: [ExecutionEventsService, EventWriter],
})
export class StatusModule {}
