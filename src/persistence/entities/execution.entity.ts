import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import type { ExecutionRecord } from '../../executions/records';
import type { ExecutionRequestSummary } from '../../executions/request';
import type { ExecutionStatus } from '../../executions/statuses';
import { epochMs, jsonText } from '../columns';

@Entity('executions')
@Index(['createdAt', 'id'])
@Index(['finishedAt'])
// Filters of GET /v1/executions (migration FindAndRerun1765200000000; the name index is
// COLLATE "C" on PostgreSQL, which a decorator cannot say).
@Index('IDX_executions_jobId_createdAt', ['jobId', 'createdAt'])
@Index('IDX_executions_userId_createdAt', ['userId', 'createdAt'])
@Index('IDX_executions_eventId_createdAt', ['eventId', 'createdAt'])
@Index('IDX_executions_status_createdAt', ['status', 'createdAt'])
export class ExecutionEntity implements ExecutionRecord {
  @PrimaryColumn({ type: 'varchar', length: 36 }) id!: string;
  @Column({ type: 'varchar', length: 200, nullable: true }) name!: string | null;
  @Column({ type: 'varchar', length: 200, nullable: true }) jobId!: string | null;
  @Column({ type: 'varchar', length: 200, nullable: true }) eventId!: string | null;
  @Column({ type: 'varchar', length: 200, nullable: true }) userId!: string | null;
  @Index() @Column({ type: 'varchar', length: 16 }) status!: ExecutionStatus;
  @Column({ type: 'varchar', length: 200, nullable: true, unique: true })
  idempotencyKey!: string | null;
  @Column({ type: 'text', transformer: jsonText }) request!: ExecutionRequestSummary;
  @Column({ type: 'bigint', transformer: epochMs }) createdAt!: number;
  @Column({ type: 'bigint', nullable: true, transformer: epochMs }) startedAt!: number | null;
  @Column({ type: 'bigint', nullable: true, transformer: epochMs }) finishedAt!: number | null;
  @Column({ type: 'varchar', length: 128, nullable: true }) ownerId!: string | null;
  @Column({ type: 'bigint', nullable: true, transformer: epochMs }) heartbeatAt!: number | null;
  @Column({ type: 'bigint', nullable: true, transformer: epochMs })
  cancelRequestedAt!: number | null;
  @Column({ type: 'varchar', length: 64, nullable: true }) requestHash!: string | null;
  @Column({ type: 'text', nullable: true }) reason!: string | null;
  @Index('IDX_executions_rerunOf')
  @Column({ type: 'varchar', length: 36, nullable: true })
  rerunOf!: string | null;
  /**
   * The sealed job (script, env, input): kept after the end for a rerun unless
   * executor.keepJobForRerun is off; never selected with the record.
   */
  @Column({ type: 'text', nullable: true, select: false }) payload?: string | null;
}
