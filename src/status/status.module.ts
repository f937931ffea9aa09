import { Global, Module } from '@nestjs/common';
import { EventWriter } from './event-writer.service';
import { ExecutionEventsService } from './execution-events.service';

/** RxJS streams of execution events, and their persistence. The websocket gateway lands here. */
@Global()
@Module({
  providers: [ExecutionEventsService, EventWriter],
  exports: [ExecutionEventsService, EventWriter],
})
export class StatusModule {}
