import { Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { Observable, Subject, Subscription } from 'rxjs';
import { retry } from '../common/backoff';
import { AppConfig } from '../config/app-config';
import type { ExecutionEventRecord } from '../executions/records';
import { ExecutionEventsRepository } from '../persistence/execution-events.repository';
import { isTransientWriteError } from '../persistence/write-errors';
import { ExecutionEvent } from './execution-event';
import { ExecutionEventsService } from './execution-events.service';

const FLUSH_MS = 50;
const MAX_BATCH = 500;

/** Persists every execution event in batches (a transaction per flush). */
@Injectable()
export class EventWriter implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(EventWriter.name);
  private buffer: ExecutionEvent[] = [];
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  private sub?: Subscription;
  private readonly stored = new Subject<ExecutionEvent[]>();
  /** Each batch once it is in the database (other replicas hear of events only then). */
  readonly stored$: Observable<ExecutionEvent[]> = this.stored.asObservable();

  constructor(
    private readonly events: ExecutionEventsService,
    private readonly repo: ExecutionEventsRepository,
    private readonly config: AppConfig,
  ) {}

  onModuleInit(): void {
    this.sub = this.events.events$.subscribe((e) => this.push(e));
  }

  async onApplicationShutdown(): Promise<void> {
    this.sub?.unsubscribe();
    await this.flush();
  }

  /** Resolves once every event emitted so far is in the database. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const batch = this.buffer;
    this.buffer = [];
    this.writing = this.writing.then(() => this.write(batch));
    return this.writing;
  }

  private push(e: ExecutionEvent): void {
    this.buffer.push(e);
    if (this.buffer.length >= MAX_BATCH) void this.flush();
    else if (!this.timer) this.timer = setTimeout(() => void this.flush(), FLUSH_MS);
  }

  private async write(batch: ExecutionEvent[]): Promise<void> {
    if (!batch.length) return;
    const rows = batch.map(toStored);
    const policy = this.config.status.writeRetry;
    try {
      await retry(policy, () => this.repo.insertMany(rows), isTransientWriteError);
      this.stored.next(batch);
    } catch (err: any) {
      if (isTransientWriteError(err) || rows.length === 1) {
        this.logger.error(
          `dropping ${rows.length} events after ${policy.attempts} failed writes: ${err?.message}`,
        );
        return;
      }
      // One event that cannot be stored (say, a value too deep to serialize) must not
      // take the rest of its batch with it: store them one by one.
      for (const e of batch) await this.write([e]);
    }
  }
}

/** The stored form: `status` (status and summary events) is kept inside `data`. */
function toStored(e: ExecutionEvent): ExecutionEventRecord {
  return {
    executionId: e.executionId,
    seq: e.seq,
    type: e.type,
    serverId: e.serverId ?? null,
    logSeq: e.logSeq ?? null,
    stream: e.stream ?? null,
    ts: e.ts,
    text: e.text ?? null,
    data: e.type === 'log' ? null : eventData(e),
    byteOffset: e.offset ?? null,
  };
}

function eventData(e: ExecutionEvent): Record<string, unknown> | null {
  const d: Record<string, unknown> = { ...(e.data ?? {}) };
  if (e.status !== undefined) d.status = e.status;
  return Object.keys(d).length ? d : null;
}
