import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, In, Not, Repository } from 'typeorm';
import type { ExecutionRecord, TargetRecord } from '../executions/records';
import { ExecutionStatus, TERMINAL_TARGET_STATUSES } from '../executions/statuses';
import { ExecutionEntity, ExecutionTargetEntity } from './entities';

export interface ExecutionWithTargets {
  execution: ExecutionEntity;
  targets: ExecutionTargetEntity[];
}

export interface ListQuery {
  status?: ExecutionStatus;
  limit: number;
  /** Opaque: `<createdAt>.<id>` of the last item of the previous page. */
  cursor?: { createdAt: number; id: string };
}

/** All reads and writes of executions and their targets (events: ExecutionEventsRepository). */
@Injectable()
export class ExecutionsRepository {
  private readonly executions: Repository<ExecutionEntity>;
  private readonly targets: Repository<ExecutionTargetEntity>;

  constructor(@InjectDataSource() private readonly db: DataSource) {
    this.executions = db.getRepository(ExecutionEntity);
    this.targets = db.getRepository(ExecutionTargetEntity);
  }

  /**
   * Inserts copies: TypeORM's multi-row insert writes re-read primary keys back into the
   * objects it was given in sorted order, which would shuffle the callers' target ids.
   */
  async create(
    execution: ExecutionRecord,
    targets: TargetRecord[],
    payload: string | null = null,
  ): Promise<void> {
    await this.db.transaction(async (m) => {
      await m.insert(ExecutionEntity, { ...execution, payload } as any);
      for (let i = 0; i < targets.length; i += 40) {
        await m.insert(
          ExecutionTargetEntity,
          targets.slice(i, i + 40).map((t) => ({ ...t })) as any[],
        );
      }
    });
  }

  findByIdempotencyKey(key: string): Promise<ExecutionEntity | null> {
    return this.executions.findOneBy({ idempotencyKey: key });
  }

  exists(id: string): Promise<boolean> {
    return this.executions.exists({ where: { id } });
  }

  async find(id: string): Promise<ExecutionWithTargets | null> {
    const execution = await this.executions.findOneBy({ id });
    if (!execution) return null;
    const targets = await this.targets.find({
      where: { executionId: id },
      order: { position: 'ASC' },
    });
    return { execution, targets };
  }

  async list(q: ListQuery): Promise<ExecutionEntity[]> {
    const qb = this.executions
      .createQueryBuilder('e')
      .orderBy('e.createdAt', 'DESC')
      .addOrderBy('e.id', 'DESC')
      .take(q.limit);
    if (q.status) qb.andWhere('e.status = :status', { status: q.status });
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
    await this.targets.update({ id }, patch as any);
  }

  async updateExecution(id: string, patch: Partial<ExecutionEntity>): Promise<void> {
    await this.executions.update({ id }, patch as any);
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

  /** The sealed job of an unfinished execution (null once it ended, or never stored). */
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
