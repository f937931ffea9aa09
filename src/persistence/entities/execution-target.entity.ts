import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import type { TargetPhases, TargetRecord } from '../../executions/records';
import type { TargetStatus } from '../../executions/statuses';
import { epochMs, jsonText } from '../columns';

@Entity('execution_targets')
@Index(['executionId', 'position'])
@Index('IDX_execution_targets_serverId_executionId', ['serverId', 'executionId'])
export class ExecutionTargetEntity implements TargetRecord {
  /** Also the remote run directory's name. */
  @PrimaryColumn({ type: 'varchar', length: 36 }) id!: string;
  @Column({ type: 'varchar', length: 36 }) executionId!: string;
  @Column({ type: 'integer' }) position!: number;
  @Column({ type: 'varchar', length: 36 }) serverId!: string;
  @Column({ type: 'varchar', length: 200 }) serverName!: string;
  @Index() @Column({ type: 'varchar', length: 16 }) status!: TargetStatus;
  @Column({ type: 'integer', nullable: true }) exitCode!: number | null;
  @Column({ type: 'varchar', length: 16, nullable: true }) signal!: string | null;
  @Column({ type: 'varchar', length: 40, nullable: true }) errorCode!: string | null;
  @Column({ type: 'text', nullable: true }) errorMessage!: string | null;
  @Column({ type: 'varchar', length: 16, nullable: true }) helperMode!: string | null;
  @Column({ type: 'text', nullable: true }) fallbackReason!: string | null;
  @Column({ type: 'text', nullable: true, transformer: jsonText }) output!: unknown;
  @Column({ type: 'boolean', nullable: true }) condition!: boolean | null;
  @Column({ type: 'boolean', default: false }) truncated!: boolean;
  @Column({ type: 'bigint', nullable: true, transformer: epochMs }) startedAt!: number | null;
  @Column({ type: 'bigint', nullable: true, transformer: epochMs }) finishedAt!: number | null;
  @Column({ type: 'text', transformer: jsonText }) phases!: TargetPhases;
  @Column({ type: 'varchar', length: 128, nullable: true }) replicaId!: string | null;
  @Column({ type: 'integer', nullable: true }) tunnelPort!: number | null;
  @Column({ type: 'varchar', length: 255, nullable: true }) tunnelSocket!: string | null;
  @Column({ type: 'integer', nullable: true }) batch!: number | null;
}
