import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { epochMs, jsonText } from '../columns';

export type ExecutionStatus =
  | 'queued'
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'partial'
  | 'cancelled';

/** What the execution was asked to do, minus secrets: env values, input and script stay in memory. */
export interface ExecutionRequestSummary {
  scriptType: 'bash' | 'python' | 'node';
  scriptBytes: number;
  envNames: string[];
  timeoutSeconds: number;
  helperMode: 'auto' | 'api' | 'bundled';
  concurrency: number;
  maxErrors: number | string | null;
  failFast: boolean;
  targets: { serverIds?: string[]; tags?: string[] };
}

@Entity('executions')
@Index(['createdAt', 'id'])
export class ExecutionEntity {
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
}
