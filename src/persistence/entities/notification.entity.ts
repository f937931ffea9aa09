import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { epochMs } from '../columns';

/**
 * How far a notification is: `waiting` for its execution to end, `pending` (due at
 * nextAttemptAt), `sending` (claimed by one replica for one attempt), then `delivered`
 * or `failed` (every attempt spent).
 */
export const NOTIFICATION_STATUSES = [
  'waiting',
  'pending',
  'sending',
  'delivered',
  'failed',
] as const;
export type NotificationStatus = (typeof NOTIFICATION_STATUSES)[number];

/** The completion notification of one execution (`notify` on its job); id = delivery id. */
@Entity('notifications')
@Index(['status', 'nextAttemptAt'])
export class NotificationEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 }) id!: string;
  @Index({ unique: true }) @Column({ type: 'varchar', length: 36 }) executionId!: string;
  @Column({ type: 'text' }) url!: string;
  /** The HMAC secret, AES-256-GCM sealed for this row's id; null: unsigned. */
  @Column({ type: 'text', nullable: true }) secret!: string | null;
  @Column({ type: 'varchar', length: 16 }) status!: NotificationStatus;
  /** The exact bytes every attempt sends, fixed when the execution ends. */
  @Column({ type: 'text', nullable: true }) body!: string | null;
  @Column({ type: 'integer' }) attempts!: number;
  @Column({ type: 'bigint', nullable: true, transformer: epochMs }) nextAttemptAt!: number | null;
  /** The replica sending now, and since when (a claim older than the timeout is stale). */
  @Column({ type: 'varchar', length: 128, nullable: true }) claimedBy!: string | null;
  @Column({ type: 'bigint', nullable: true, transformer: epochMs }) claimedAt!: number | null;
  @Column({ type: 'bigint', transformer: epochMs }) createdAt!: number;
}

/** One delivery attempt: its HTTP status, or the error it ended with. */
@Entity('notification_attempts')
export class NotificationAttemptEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 }) notificationId!: string;
  @PrimaryColumn({ type: 'integer' }) attempt!: number;
  @Index() @Column({ type: 'varchar', length: 36 }) executionId!: string;
  @Column({ type: 'bigint', transformer: epochMs }) at!: number;
  @Column({ type: 'integer', nullable: true }) httpStatus!: number | null;
  @Column({ type: 'text', nullable: true }) error!: string | null;
  @Column({ type: 'integer' }) durationMs!: number;
}
