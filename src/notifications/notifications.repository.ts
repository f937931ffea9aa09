import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { NotificationAttemptEntity, NotificationEntity } from '../persistence/entities';
import { FastSql, FastTable } from '../persistence/fast-sql';

type Step = { sql: string; params: unknown[] };

/**
 * The notifications table and its attempts. Every change of state is a conditional
 * UPDATE on the row's status (and claim), so of several replicas exactly one moves it.
 */
@Injectable()
export class NotificationsRepository {
  private readonly sql: FastSql;
  private readonly n: FastTable;
  private readonly a: FastTable;

  constructor(@InjectDataSource() db: DataSource) {
    this.sql = new FastSql(db);
    this.n = this.sql.table(NotificationEntity);
    this.a = this.sql.table(NotificationAttemptEntity);
  }

  /** The INSERT of a new notification, for the transaction that creates its execution. */
  insertStep(row: NotificationEntity): Step {
    return this.n.insert([row as unknown as Record<string, unknown>]);
  }

  /** Waiting notifications whose execution has ended. */
  async endedWaiting(limit: number): Promise<{ id: string; executionId: string }[]> {
    const rows = await this.sql.all(
      `SELECT n."id", n."executionId" FROM "notifications" n JOIN "executions" e ON e."id" = n."executionId"
       WHERE n."status" = 'waiting' AND e."finishedAt" IS NOT NULL LIMIT ?`,
      [limit],
    );
    return rows as { id: string; executionId: string }[];
  }

  /** Fixes the body and makes it due now; false when another replica did first. */
  async promote(id: string, body: string, now: number): Promise<boolean> {
    const changed = await this.sql.run(
      `UPDATE "notifications" SET "status" = 'pending', "body" = ?, "nextAttemptAt" = ?
       WHERE "id" = ? AND "status" = 'waiting'`,
      [body, now, id],
    );
    return changed === 1;
  }

  async due(now: number, limit: number): Promise<string[]> {
    const rows = await this.sql.all(
      `SELECT "id" FROM "notifications" WHERE "status" = 'pending' AND "nextAttemptAt" <= ?
       ORDER BY "nextAttemptAt" LIMIT ?`,
      [now, limit],
    );
    return rows.map((r) => String(r.id));
  }

  /** Claims a due notification for one attempt: the row as claimed, or null (someone else has it). */
  async claim(id: string, replicaId: string, now: number): Promise<NotificationEntity | null> {
    const changed = await this.sql.run(
      `UPDATE "notifications" SET "status" = 'sending', "claimedBy" = ?, "claimedAt" = ?,
       "attempts" = "attempts" + 1 WHERE "id" = ? AND "status" = 'pending' AND "nextAttemptAt" <= ?`,
      [replicaId, now, id, now],
    );
    return changed === 1 ? this.get(id) : null;
  }

  async get(id: string): Promise<NotificationEntity | null> {
    const [row] = await this.sql.all(
      `SELECT ${this.n.selectList} FROM ${this.n.name} WHERE "id" = ?`,
      [id],
    );
    return row ? this.n.fromRow<NotificationEntity>(row) : null;
  }

  /**
   * Claims older than `before` (their replica died or stopped mid-attempt), and those
   * this replica held before it restarted: they are taken back, each by one replica.
   */
  async stale(before: number, replicaId: string, limit: number): Promise<NotificationEntity[]> {
    const rows = await this.sql.all(
      `SELECT ${this.n.selectList} FROM ${this.n.name} WHERE "status" = 'sending'
       AND ("claimedAt" < ? OR "claimedBy" = ?) LIMIT ?`,
      [before, replicaId, limit],
    );
    return rows.map((r) => this.n.fromRow<NotificationEntity>(r));
  }

  /**
   * Records an attempt and moves the row on, if the claim it was made under still holds
   * (one transaction: the attempt's primary key keeps a second record of it out).
   */
  async settle(
    claim: Pick<NotificationEntity, 'id' | 'claimedBy' | 'claimedAt'>,
    attempt: NotificationAttemptEntity,
    next: { status: 'pending' | 'delivered' | 'failed'; nextAttemptAt: number | null },
  ): Promise<void> {
    await this.sql.transaction([
      this.a.insert([attempt as unknown as Record<string, unknown>]),
      {
        sql: `UPDATE "notifications" SET "status" = ?, "nextAttemptAt" = ?, "claimedBy" = NULL,
              "claimedAt" = NULL WHERE "id" = ? AND "status" = 'sending' AND "claimedBy" = ? AND "claimedAt" = ?`,
        params: [next.status, next.nextAttemptAt, claim.id, claim.claimedBy, claim.claimedAt],
      },
    ]);
  }

  async ofExecution(
    executionId: string,
  ): Promise<{ notification: NotificationEntity; attempts: NotificationAttemptEntity[] }[]> {
    const rows = await this.sql.all(
      `SELECT ${this.n.selectList} FROM ${this.n.name} WHERE "executionId" = ?`,
      [executionId],
    );
    const attempts = await this.sql.all(
      `SELECT ${this.a.selectList} FROM ${this.a.name} WHERE "executionId" = ? ORDER BY "attempt"`,
      [executionId],
    );
    return rows.map((r) => {
      const notification = this.n.fromRow<NotificationEntity>(r);
      return {
        notification,
        attempts: attempts
          .map((x) => this.a.fromRow<NotificationAttemptEntity>(x))
          .filter((x) => x.notificationId === notification.id),
      };
    });
  }
}
