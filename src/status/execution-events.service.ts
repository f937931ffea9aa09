import { Injectable } from '@nestjs/common';
import { Observable, Subject } from 'rxjs';
import { EmittedEvent, ExecutionEvent } from './execution-event';

interface Counters {
  seq: number;
  logSeq: number;
}

/**
 * The one-way event stream of all executions. The executor emits; persistence, metrics
 * and websocket subscribers listen. Sequence numbers are assigned here, at emission, so
 * every listener sees the same order.
 */
@Injectable()
export class ExecutionEventsService {
  private readonly subject = new Subject<ExecutionEvent>();
  private readonly everywhere = new Subject<ExecutionEvent>();
  private readonly counters = new Map<string, Counters>();
  /** Events emitted here, numbered: what this replica stores. */
  readonly events$: Observable<ExecutionEvent> = this.subject.asObservable();
  /** Those, and the events other replicas stored (relayed): what subscribers here see. */
  readonly feed$: Observable<ExecutionEvent> = this.everywhere.asObservable();

  /** Starts numbering for an execution (continuing from stored events if any). */
  open(executionId: string, seq = 0, logSeq = 0): void {
    this.counters.set(executionId, { seq, logSeq });
  }

  emit(executionId: string, event: EmittedEvent): ExecutionEvent {
    let c = this.counters.get(executionId);
    if (!c) {
      c = { seq: 0, logSeq: 0 };
      this.counters.set(executionId, c);
    }
    const full: ExecutionEvent = { ...event, executionId, seq: ++c.seq, ts: Date.now() };
    if (event.type === 'log') full.logSeq = ++c.logSeq;
    this.subject.next(full);
    this.everywhere.next(full);
    if (event.type === 'end') this.counters.delete(executionId);
    return full;
  }

  /** An event another replica emitted and stored: for subscribers only, never re-stored. */
  relay(event: ExecutionEvent): void {
    this.everywhere.next(event);
  }

  isLive(executionId: string): boolean {
    return this.counters.has(executionId);
  }
}
