import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { PersistenceModule } from '../persistence/persistence.module';
import { EventWriter } from './event-writer.service';
import { ExecutionEventsService } from './execution-events.service';
import { StatusGateway } from './status.gateway';

/** RxJS streams of execution events, and their persistence. The websocket gateway `/v1/status` serves them. */
@Module({
  imports: [AuthModule, PersistenceModule],
  providers: [ExecutionEventsService, EventWriter, StatusGateway],
  exports: [ExecutionEventsService, EventWriter],
})
export class StatusModule {}
