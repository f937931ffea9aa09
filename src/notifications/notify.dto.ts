import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsString, MaxLength, MinLength } from 'class-validator';
import { IsOptionalNotNull } from '../common/validation';
import { NOTIFICATION_STATUSES } from '../persistence/entities/notification.entity';

export const MAX_NOTIFY_URL = 2048;
export const MAX_NOTIFY_SECRET = 256;

/** `notify` on a job: where its summary is POSTed once it ends. */
export class NotifyDto {
  @ApiProperty({
    description: 'http(s) URL matching notifications.allowList; redirects are not followed',
    maxLength: MAX_NOTIFY_URL,
    example: 'https://hooks.example.com/cronium',
  })
  @IsString()
  @MinLength(1)
  @MaxLength(MAX_NOTIFY_URL)
  url!: string;

  @ApiPropertyOptional({
    description:
      'HMAC-SHA256 key: the body is signed in X-Cronium-Signature. Stored encrypted, never returned',
    minLength: 1,
    maxLength: MAX_NOTIFY_SECRET,
    writeOnly: true,
  })
  @IsOptionalNotNull()
  @IsString()
  @MinLength(1)
  @MaxLength(MAX_NOTIFY_SECRET)
  secret?: string;
}

export class NotificationAttemptView {
  @ApiProperty({ type: 'integer', minimum: 1, description: '1 for the first attempt' })
  attempt!: number;
  @ApiProperty({ format: 'date-time' }) at!: string;
  @ApiProperty({ type: 'integer', nullable: true, description: 'null when no response came' })
  httpStatus!: number | null;
  @ApiProperty({ type: String, nullable: true, description: 'why it failed; null on success' })
  error!: string | null;
  @ApiProperty({ type: 'integer', minimum: 0 }) durationMs!: number;
}

export class NotificationView {
  @ApiProperty({ format: 'uuid', description: 'Sent as X-Cronium-Delivery on every attempt' })
  deliveryId!: string;
  @ApiProperty({ description: 'The URL without credentials, query or fragment' }) url!: string;
  @ApiProperty({ description: 'Whether attempts carry X-Cronium-Signature' }) signed!: boolean;
  @ApiProperty({ enum: [...NOTIFICATION_STATUSES] })
  status!: string;
  @ApiProperty({ type: String, format: 'date-time', nullable: true })
  nextAttemptAt!: string | null;
  @ApiProperty({ type: [NotificationAttemptView] }) attempts!: NotificationAttemptView[];
}

export class ExecutionNotificationsView {
  @ApiProperty({ format: 'uuid' }) executionId!: string;
  @ApiProperty({ type: [NotificationView], description: 'Empty when the job had no notify' })
  items!: NotificationView[];
}
