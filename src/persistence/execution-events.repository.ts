import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { Database, Transaction } from 'better-sqlite3';
import { DataSource, MoreThan, Repository } from 'typeorm';
import type { BetterSqlite3Driver } from 'typeorm/driver/better-sqlite3/BetterSqlite3Driver';
import type { ExecutionEventRecord } from '../executions/records';
import { ExecutionEventEntity } from './entities';

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
  'byteOffset',
] as const;
const COLUMNS = COLUMN_LIST.map((c) => `"${c}"`).join(',');
/** Rows written between yields to the event loop. */
const CHUNK = 2000;
/** 10 parameters a row: well under PostgreSQL's 65535 bound parameters. */
const PG_ROWS = 1000;

type Row = unknown[];

/** All reads and writes of execution events (the websocket replay and the logs API). */
@Injectable()
export class ExecutionEventsRepository {
  private readonly events: Repository<ExecutionEventEntity>;
  private sqliteInsert: Transaction<(rows: Row[]) => void> | null = null;

  constructor(@InjectDataSource() private readonly db: DataSource) {
    this.events = db.getRepository(ExecutionEventEntity);
  }

  /**
   * Appends events in chunks, yielding between them: a flood of output must not hold the
   * event loop (websockets, probes and the API share it).
   */
  async insertMany(events: readonly ExecutionEventRecord[]): Promise<void> {
    const rows = events.map(toRow);
    for (let i = 0; i < rows.length; i += CHUNK) {
      await this.insert(rows.slice(i, i + CHUNK));
      if (i + CHUNK < rows.length) await new Promise((r) => setImmediate(r));
    }
  }

  /**
   * Stored events after `afterSeq`, in order, at most `limit`; with `serverId`, that
   * server's events and the execution-wide ones (no server).
   */
  replayPage(
    executionId: string,
    afterSeq: number,
    limit: number,
    serverId?: string,
  ): Promise<ExecutionEventRecord[]> {
    const qb = this.events
      .createQueryBuilder('ev')
      .where('ev.executionId = :id', { id: executionId })
      .andWhere('ev.seq > :after', { after: afterSeq })
      .orderBy('ev.seq', 'ASC')
      .limit(limit);
    if (serverId) qb.andWhere('(ev.serverId = :sid OR ev.serverId IS NULL)', { sid: serverId });
    return qb.getMany();
  }

  /** The seq of the execution's `end` event; null while it has none. */
  async endSeq(executionId: string): Promise<number | null> {
    const end = await this.events.findOne({
      where: { executionId, type: 'end' },
      select: { seq: true },
    });
    return end ? end.seq : null;
  }

  /** The highest seq and logSeq stored for an execution (0 when none). */
  async lastSeqs(executionId: string): Promise<{ seq: number; logSeq: number }> {
    const row = await this.events
      .createQueryBuilder('ev')
      .select('MAX(ev.seq)', 'seq')
      .addSelect('MAX(ev.logSeq)', 'logSeq')
      .where('ev.executionId = :executionId', { executionId })
      .getRawOne();
    return { seq: Number(row?.seq ?? 0), logSeq: Number(row?.logSeq ?? 0) };
  }

  /** A page of log entries after `afterSeq` (log sequence), optionally of one server. */
  logs(
    executionId: string,
    afterSeq: number,
    limit: number,
    serverId?: string,
  ): Promise<ExecutionEventRecord[]> {
    return this.events.find({
      where: {
        executionId,
        type: 'log',
        logSeq: MoreThan(afterSeq),
        ...(serverId ? { serverId } : {}),
      },
      order: { logSeq: 'ASC' },
      take: limit,
    });
  }

  /**
   * Where a follower resumes for one target: the byte offset just past the last stored
   * log entry of each stream (0 when none).
   */
  async resumeOffsets(
    executionId: string,
    serverId: string,
  ): Promise<{ stdout: number; stderr: number }> {
    const rows: { stream: string; offset: string | number | null }[] = await this.events
      .createQueryBuilder('ev')
      .select('ev.stream', 'stream')
      .addSelect('MAX(ev.byteOffset)', 'offset')
      .where('ev.executionId = :executionId AND ev.serverId = :serverId AND ev.type = :type', {
        executionId,
        serverId,
        type: 'log',
      })
      .andWhere('ev.stream IN (:...streams)', { streams: ['stdout', 'stderr'] })
      .groupBy('ev.stream')
      .getRawMany();
    const at = (s: string) => Number(rows.find((r) => r.stream === s)?.offset ?? 0);
    return { stdout: at('stdout'), stderr: at('stderr') };
  }

  /**
   * SQLite: one prepared statement in one transaction per chunk (better-sqlite3 runs it
   * synchronously at native speed); PostgreSQL: one multi-row INSERT per chunk.
   */
  private async insert(rows: Row[]): Promise<void> {
    if (this.db.options.type === 'better-sqlite3') {
      if (!this.sqliteInsert) {
        const sqlite = (this.db.driver as BetterSqlite3Driver).databaseConnection as Database;
        const stmt = sqlite.prepare(
          `INSERT INTO execution_events (${COLUMNS}) VALUES (${COLUMN_LIST.map(() => '?').join(',')})`,
        );
        this.sqliteInsert = sqlite.transaction((chunk: Row[]) => {
          for (const r of chunk) stmt.run(r);
        });
      }
      this.sqliteInsert(rows);
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

/** Column values in COLUMN_LIST order; `data` as JSON text (SQL NULL when absent). */
function toRow(e: ExecutionEventRecord): Row {
  return [
    e.executionId,
    e.seq,
    e.type,
    e.serverId ?? null,
    e.logSeq ?? null,
    e.stream ?? null,
    e.ts,
    e.text ?? null,
    e.data == null ? null : JSON.stringify(e.data),
    e.byteOffset ?? null,
  ];
}
