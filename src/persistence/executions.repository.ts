import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, In, Not, Repository } from 'typeorm';
import type { ExecutionRecord, TargetRecord } from '../executions/records';
import { ExecutionStatus, TERMINAL_TARGET_STATUSES } from '../executions/statuses';
import { ExecutionEntity, ExecutionTargetEntity } from './entities';
import { FastSql, FastTable } from './fast-sql';
import { nameColumn, NameRange, whereNameIn } from './name-prefix';

export interface ExecutionWithTargets {
  execution: ExecutionEntity;
  targets: ExecutionTargetEntity[];
}

/** Every filter given must hold (AND). */
export interface ListQuery {
  /** Any of these. */
  status?: ExecutionStatus[];
  /** Has a target on this server. */
  serverId?: string;
  jobId?: string;
  userId?: string;
  eventId?: string;
  /** The name lies in this range (a prefix: see prefixRange). */
  name?: NameRange;
  /** createdAfter <= createdAt < createdBefore (epoch ms). */
  createdAfter?: number;
  createdBefore?: number;
  limit: number;
  /** Opaque: `<createdAt>.<id>` of the last item of the previous page. */
  cursor?: { createdAt: number; id: string };
}

/**
 * All reads and writes of executions and their targets (events: ExecutionEventsRepository).
 * What every job does (create, find, the status updates) runs as prepared statements on
 * the driver (FastSql); the rest goes through TypeORM.
 */
@Injectable()
export class ExecutionsRepository {
  private readonly executions: Repository<ExecutionEntity>;
  private readonly targets: Repository<ExecutionTargetEntity>;
  private readonly fast: { executions: FastTable; targets: FastTable };

  constructor(@InjectDataSource() private readonly db: DataSource) {
    this.executions = db.getRepository(ExecutionEntity);
    this.targets = db.getRepository(ExecutionTargetEntity);
    const sql = new FastSql(db);
    this.fast = {
      executions: sql.table(ExecutionEntity),
      targets: sql.table(ExecutionTargetEntity),
    };
  }

  /** The execution and its targets (and `extra` rows that go with it), in one transaction. */
  async create(
    execution: ExecutionRecord,
    targets: TargetRecord[],
    payload: string | null = null,
    extra: { sql: string; params: unknown[] }[] = [],
  ): Promise<void> {
    const { executions, targets: t } = this.fast;
    const steps = [executions.insert([{ ...execution, payload }]), ...extra];
    for (let i = 0; i < targets.length; i += 40) {
      steps.push(t.insert(targets.slice(i, i + 40) as unknown as Record<string, unknown>[]));
    }
    await executions.sql.transaction(steps);
  }

  findByIdempotencyKey(key: string): Promise<ExecutionEntity | null> {
    return this.executions.findOneBy({ idempotencyKey: key });
  }

  exists(id: string): Promise<boolean> {
    return this.executions.exists({ where: { id } });
  }

  async find(id: string): Promise<ExecutionWithTargets | null> {
    const { executions, targets: t } = this.fast;
    const [row] = await executions.sql.all(
      `SELECT ${executions.selectList} FROM ${executions.name} WHERE "id" = ?`,
      [id],
    );
    if (!row) return null;
    const rows = await t.sql.all(
      `SELECT ${t.selectList} FROM ${t.name} WHERE "executionId" = ? ORDER BY "position" ASC`,
      [id],
    );
    return {
      execution: executions.fromRow<ExecutionEntity>(row),
      targets: rows.map((r) => t.fromRow<ExecutionTargetEntity>(r)),
    };
  }

  async list(q: ListQuery): Promise<ExecutionEntity[]> {
    const qb = this.executions
      .createQueryBuilder('e')
      .orderBy('e.createdAt', 'DESC')
      .addOrderBy('e.id', 'DESC')
      .take(q.limit);
    if (q.status?.length) qb.andWhere('e.status IN (:...status)', { status: q.status });
    for (const label of ['jobId', 'userId', 'eventId'] as const) {
      if (q[label] !== undefined) qb.andWhere(`e.${label} = :${label}`, { [label]: q[label] });
    }
    if (q.serverId) {
      qb.andWhere(
        'EXISTS (SELECT 1 FROM execution_targets t WHERE t."executionId" = e.id AND t."serverId" = :serverId)',
        { serverId: q.serverId },
      );
    }
    if (q.name) whereNameIn(qb, nameColumn(this.db, 'e'), q.name);
    if (q.createdAfter !== undefined) {
      qb.andWhere('e.createdAt >= :after', { after: q.createdAfter });
    }
    if (q.createdBefore !== undefined) {
      qb.andWhere('e.createdAt < :before', { before: q.createdBefore });
    }
    if (q.cursor) {
      qb.andWhere('(e.createdAt < :c OR (e.createdAt = :c AND e.id < :id))', {
        c: q.cursor.createdAt,
        id: q.cursor.id,
      });
    }
    return qb.getMany();
  }

  async targetsOf(ids: string[]): Promise<ExecutionTargetEntity[]> {
    if (!ids.length) return [];
    return this.targets.find({ where: { executionId: In(ids) }, order: { position: 'ASC' } });
  }

  async updateTarget(id: string, patch: Partial<ExecutionTargetEntity>): Promise<void> {
    await this.update(this.fast.targets, id, patch);
  }

  async updateExecution(id: string, patch: Partial<ExecutionEntity>): Promise<void> {
    await this.update(this.fast.executions, id, patch);
  }

  private async update(table: FastTable, id: string, patch: object): Promise<void> {
    const { set, params } = table.assignments(patch as Record<string, unknown>);
    if (!set) return;
    await table.sql.run(`UPDATE ${table.name} SET ${set} WHERE "id" = ?`, [...params, id]);
  }

  /** Executions not finished yet, whoever drives them. */
  unfinished(): Promise<ExecutionEntity[]> {
    return this.executions.find({ where: { status: In(['queued', 'running']) } });
  }

  /** The owner is alive: renews its heartbeat on the executions it drives (`ids`). */
  async heartbeat(ownerId: string, now: number, ids: string[]): Promise<void> {
    if (!ids.length) return;
    await this.executions.update(
      { ownerId, id: In(ids), status: In(['queued', 'running']) },
      { heartbeatAt: now },
    );
  }

  /**
   * Takes an unfinished execution over, atomically: only when it is already ours, or its
   * owner's heartbeat is older than `staleBefore` (or it has none). True when we own it now.
   */
  async claim(id: string, ownerId: string, now: number, staleBefore: number): Promise<boolean> {
    const r = await this.executions
      .createQueryBuilder()
      .update()
      .set({ ownerId, heartbeatAt: now })
      .where('id = :id AND status IN (:...live)', { id, live: ['queued', 'running'] })
      .andWhere(
        '("ownerId" = :ownerId OR "ownerId" IS NULL OR "heartbeatAt" IS NULL OR "heartbeatAt" < :stale)',
        { ownerId, stale: staleBefore },
      )
      .execute();
    return (r.affected ?? 0) > 0;
  }

  /**
   * The sealed job of an execution: null when never stored, or cleared at its end
   * (executor.keepJobForRerun off).
   */
  async payloadOf(id: string): Promise<string | null> {
    const row = await this.executions
      .createQueryBuilder('e')
      .select('e.payload', 'payload')
      .where('e.id = :id', { id })
      .getRawOne<{ payload: string | null }>();
    return row?.payload ?? null;
  }

  /** Records a cancel request; false when the execution has already ended (or is unknown). */
  async requestCancel(id: string, now: number): Promise<boolean> {
    const r = await this.executions.update(
      { id, status: In(['queued', 'running']) },
      { cancelRequestedAt: now },
    );
    return (r.affected ?? 0) > 0;
  }

  /** Lets go of an execution (handed over): any replica may claim it at once. */
  async release(id: string, ownerId: string): Promise<void> {
    await this.executions.update({ id, ownerId }, { ownerId: null, heartbeatAt: null });
  }

  /**
   * Of `ids`, those this owner still holds (another replica may have taken one over), and
   * of those, the ones a caller asked to cancel.
   */
  async ownedBy(
    ids: string[],
    ownerId: string,
  ): Promise<{ owned: Set<string>; cancelRequested: Set<string> }> {
    const owned = new Set<string>();
    const cancelRequested = new Set<string>();
    if (!ids.length) return { owned, cancelRequested };
    const rows = await this.executions.find({
      select: { id: true, cancelRequestedAt: true },
      where: { id: In(ids), ownerId },
    });
    for (const r of rows) {
      owned.add(r.id);
      if (r.cancelRequestedAt !== null) cancelRequested.add(r.id);
    }
    return { owned, cancelRequested };
  }

  unfinishedTargets(executionId: string): Promise<ExecutionTargetEntity[]> {
    return this.targets.find({
      where: { executionId, status: Not(In(TERMINAL_TARGET_STATUSES)) },
      order: { position: 'ASC' },
    });
  }
}
