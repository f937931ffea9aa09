import { Inject, Injectable, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { Subscription } from 'rxjs';
import { ClusterBus } from '../queue/cluster-bus';
import { EventWriter } from './event-writer.service';
import { ExecutionEventsService } from './execution-events.service';

/**
 * Websocket subscribers on every replica see every execution: each replica publishes the
 * events it has stored, and relays what the others stored to its own subscribers. Only
 * stored events travel, so what a subscriber gets live is what a replay would give:
 * a replica that dies mid-batch cannot have sent events its successor numbers again.
 */
@Injectable()
export class ReplicaFanout implements OnModuleInit, OnModuleDestroy {
  private sub?: Subscription;

  constructor(
    @Inject(ClusterBus) private readonly bus: ClusterBus,
    private readonly writer: EventWriter,
    private readonly events: ExecutionEventsService,
  ) {}

  onModuleInit(): void {
    this.sub = this.writer.stored$.subscribe((batch) => this.bus.publishEvents(batch));
    this.bus.onEvents((batch) => {
      for (const e of batch) this.events.relay(e);
    });
  }

  onModuleDestroy(): void {
    this.sub?.unsubscribe();
  }
}
