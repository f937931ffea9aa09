import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import type { ExecutionRecord } from '../../executions/records';
import type { ExecutionRequestSummary } from '../../executions/request';
import type { ExecutionStatus } from '../../executions/statuses';
import { epochMs, jsonText } from '../columns';

@Entity('executions')
@Index(['createdAt', 'id'])
@Index(['finishedAt'])
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
  /** The sealed job (script, env, input) while unfinished; never selected with the record. */
  @Column({ type: 'text', nullable: true, select: false }) payload?: string | null;
}
