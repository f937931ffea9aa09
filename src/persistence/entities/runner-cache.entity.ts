import { Column, Entity, PrimaryColumn } from 'typeorm';
import { epochMs } from '../columns';

/** A runner known to be deployed on a server (keyed by server and artifact hash). */
@Entity('runner_cache')
export class RunnerCacheEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 }) serverId!: string;
  @PrimaryColumn({ type: 'varchar', length: 64 }) runnerHash!: string;
  /** The remote base directory it was deployed under; a changed baseDir invalidates it. */
  @Column({ type: 'varchar', length: 255 }) baseDir!: string;
  @Column({ type: 'bigint', transformer: epochMs }) deployedAt!: number;
  @Column({ type: 'bigint', transformer: epochMs }) verifiedAt!: number;
}
