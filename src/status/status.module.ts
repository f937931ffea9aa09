import { Global, Module } from '@nestjs/common';
import { EventWriter } from './event-writer.service';
import { ExecutionEventsService } from './execution-events.service';
import { StatusGateway } from './status.gateway';

/** RxJS streams of execution events, and their persistence. The websocket gateway `/v1/status` serves them. */
@Global()
@Module({
  providers: [ExecutionEventsService, EventWriter, StatusGateway],
  exports: [ExecutionEventsService, EventWriter],
})
export class StatusModule {}
