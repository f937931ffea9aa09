import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { epochMs, jsonText } from '../columns';

import type { ExecutionEventRecord, ExecutionEventType, LogStream } from '../../executions/records';

/** Every event of an execution, in order (see ExecutionEventRecord). */
@Entity('execution_events')
@Index(['executionId', 'logSeq'])
export class ExecutionEventEntity implements ExecutionEventRecord {
  @PrimaryColumn({ type: 'varchar', length: 36 }) executionId!: string;
  @PrimaryColumn({ type: 'integer' }) seq!: number;
  @Column({ type: 'varchar', length: 16 }) type!: ExecutionEventType;
  @Column({ type: 'varchar', length: 36, nullable: true }) serverId!: string | null;
  @Column({ type: 'integer', nullable: true }) logSeq!: number | null;
  @Column({ type: 'varchar', length: 8, nullable: true }) stream!: LogStream | null;
  @Column({ type: 'bigint', transformer: epochMs }) ts!: number;
  @Column({ type: 'text', nullable: true }) text!: string | null;
  @Column({ type: 'text', nullable: true, transformer: jsonText }) data!: Record<
    string,
    unknown
  > | null;
  @Column({ type: 'bigint', nullable: true, transformer: epochMs }) byteOffset!: number | null;
}
