import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { FastSql } from '../persistence/fast-sql';

/** What the sweep deletes, child rows first (the execution row goes last). */
export const SWEPT_KINDS = [
  'events',
  'targets',
  'notification_attempts',
  'notifications',
  'executions',
] as const;
export type SweptKind = (typeof SWEPT_KINDS)[number];

/** A DELETE of at most `limit` rows of one kind of one execution, child rows by key. */
const bounded = (table: string, key: string) => ({
  sql: `DELETE FROM "${table}" WHERE "executionId" = ? AND "${key}" IN
    (SELECT "${key}" FROM "${table}" WHERE "executionId" = ? LIMIT ?)`,
  params: (id: string, limit: number) => [id, id, limit],
});

/** Fixed SQL texts, so each is prepared once (SQLite statements, PostgreSQL named ones). */
const DELETES: Record<
  SweptKind,
  { sql: string; params: (id: string, limit: number) => unknown[] }
> = {
  events: bounded('execution_events', 'seq'),
  targets: bounded('execution_targets', 'id'),
  notification_attempts: bounded('notification_attempts', 'attempt'),
  notifications: bounded('notifications', 'id'),
  // Never one that has not ended, whatever selected it.
  executions: {
    sql: `DELETE FROM "executions" WHERE "id" = ? AND "finishedAt" IS NOT NULL`,
    params: (id) => [id],
  },
};

@Injectable()
export class RetentionRepository {
  private readonly sql: FastSql;

  constructor(@InjectDataSource() db: DataSource) {
    this.sql = new FastSql(db);
  }

  /**
   * The createdAt under which finished executions are beyond the newest `keep` finished
   * ones, or -1 when there are not more than `keep`.
   */
  async createdAtCutoff(keep: number): Promise<number> {
    const [row] = await this.sql.all(
      `SELECT "createdAt" FROM "executions" WHERE "finishedAt" IS NOT NULL
       ORDER BY "createdAt" DESC LIMIT 1 OFFSET ?`,
      [keep - 1],
    );
    return row ? Number(row.createdAt) : -1;
  }

  /** Finished executions that ended before `finishedBefore` or were created before `createdBefore`. */
  async expired(finishedBefore: number, createdBefore: number, limit: number): Promise<string[]> {
    const rows = await this.sql.all(
      `SELECT "id" FROM "executions" WHERE "finishedAt" IS NOT NULL
       AND ("finishedAt" < ? OR "createdAt" < ?) ORDER BY "finishedAt" LIMIT ?`,
      [finishedBefore, createdBefore, limit],
    );
    return rows.map((r) => String(r.id));
  }

  /** Deletes up to `limit` rows of one kind of one execution; how many went. */
  deleteSome(kind: SweptKind, executionId: string, limit: number): Promise<number> {
    const d = DELETES[kind];
    return this.sql.run(d.sql, d.params(executionId, limit));
  }
}
