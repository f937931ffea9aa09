import { Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Subscription } from 'rxjs';
import { DataSource } from 'typeorm';
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
  private sqliteInsert: ((rows: unknown[][]) => void) | null = null;

  constructor(
    private readonly events: ExecutionEventsService,
    @InjectDataSource() private readonly db: DataSource,
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
    const rows = batch.map((e) => [
      e.executionId,
      e.seq,
      e.type,
      e.serverId ?? null,
      e.logSeq ?? null,
      e.stream ?? null,
      e.ts,
      e.text ?? null,
      e.type === 'log' ? null : jsonOrNull(eventData(e)),
    ]);
    for (let attempt = 0; ; attempt++) {
      try {
        // Chunks, yielding between them: a flood of output must not hold the event loop
        // (websockets, probes and the API share it).
        for (let i = 0; i < rows.length; i += CHUNK) {
          await this.insert(rows.slice(i, i + CHUNK));
          if (i + CHUNK < rows.length) await new Promise((r) => setImmediate(r));
        }
        return;
      } catch (err: any) {
        if (attempt >= 2) {
          this.logger.error(
            `dropping ${rows.length} events after 3 failed writes: ${err?.message}`,
          );
          return;
        }
        await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
      }
    }
  }

  /**
   * SQLite: one prepared statement in one transaction per chunk (better-sqlite3 runs it
   * synchronously at native speed); PostgreSQL: one multi-row INSERT per chunk.
   */
  private async insert(rows: unknown[][]): Promise<void> {
    if (this.db.options.type === 'better-sqlite3') {
      if (!this.sqliteInsert) {
        const sqlite = (this.db.driver as any).databaseConnection;
        const stmt = sqlite.prepare(
          `INSERT INTO execution_events (${COLUMNS}) VALUES (${COLUMN_LIST.map(() => '?').join(',')})`,
        );
        this.sqliteInsert = sqlite.transaction((chunk: unknown[][]) => {
          for (const r of chunk) stmt.run(r);
        });
      }
      this.sqliteInsert!(rows);
      return;
    }
    for (let i = 0; i < rows.length; i += PG_ROWS) {
      const part = rows.slice(i, i + PG_ROWS);
      const values = part
        .map(
          (_, j) =>
            `(${COLUMN_LIST.map((__, k) => `$${j * COLUMN_LIST.length + k + 1}`).join(',')})`,
        )
        .join(',');
      await this.db.query(
        `INSERT INTO execution_events (${COLUMNS}) VALUES ${values}`,
        part.flat(),
      );
    }
  }
}

const COLUMN_LIST = [
  'executionId',
  'seq',
  'type',
  'serverId',
  'logSeq',
  'stream',
  'ts',
  'text',
  'data',
];
const COLUMNS = COLUMN_LIST.map((c) => `"${c}"`).join(',');
/** Rows written between yields to the event loop. */
const CHUNK = 2000;
/** 9 parameters a row: well under PostgreSQL's 65535 bound parameters. */
const PG_ROWS = 1000;

function jsonOrNull(d: Record<string, unknown> | null): string | null {
  return d == null ? null : JSON.stringify(d);
}

function eventData(e: ExecutionEvent): Record<string, unknown> | null {
  const d: Record<string, unknown> = { ...(e.data ?? {}) };
  if (e.status !== undefined) d.status = e.status;
  return Object.keys(d).length ? d : null;
}
