import { applyDecorators } from '@nestjs/common';
import { ApiPropertyOptional } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  IsIn,
  IsInt,
  IsNotEmpty,
  IsOptional,
  IsString,
  IsUUID,
  Max,
  MaxLength,
  Min,
} from 'class-validator';
import { NamePrefix, QueryList, QueryTimestamp } from '../../common/query-list';
import { QueryInt } from '../../common/validation';
import { EXECUTION_STATUSES, ExecutionStatus } from '../../executions/statuses';

/** Page size of GET /v1/executions when `limit` is absent. */
export const DEFAULT_LIST_LIMIT = 50;

/** A label filter (jobId, userId, eventId): the exact value a job was given. */
const Label = (property: string) =>
  applyDecorators(
    ApiPropertyOptional({
      maxLength: 200,
      description: `Only executions whose ${property} is this`,
    }),
    IsOptional(),
    IsString({ message: `${property} must be one string (give it once)` }),
    IsNotEmpty({ message: `${property} must not be empty` }),
    MaxLength(200),
  );

/** `GET /v1/executions`: every filter given must hold (AND); newest first. */
export class ListExecutionsQuery {
  @ApiPropertyOptional({
    isArray: true,
    enum: [...EXECUTION_STATUSES],
    description: 'Any of these statuses: repeat it (status=a&status=b) or list it (status=a,b)',
  })
  @IsOptional()
  @QueryList()
  @ArrayMaxSize(EXECUTION_STATUSES.length * 2)
  @IsIn(EXECUTION_STATUSES, {
    each: true,
    message: `status must be one or more of ${EXECUTION_STATUSES.join(', ')}`,
  })
  status?: ExecutionStatus[];

  @ApiPropertyOptional({
    format: 'uuid',
    description: 'Only executions with this server as a target',
  })
  @IsOptional()
  @IsUUID('all', { message: 'serverId must be a server id (UUID)' })
  serverId?: string;

  @Label('jobId') jobId?: string;
  @Label('userId') userId?: string;
  @Label('eventId') eventId?: string;

  @NamePrefix('executions')
  name?: string;

  @ApiPropertyOptional({
    format: 'date-time',
    description: 'Only executions created at or after this instant (RFC 3339)',
  })
  @IsOptional()
  @QueryTimestamp('createdAfter')
  createdAfter?: string;

  @ApiPropertyOptional({
    format: 'date-time',
    description: 'Only executions created before this instant (RFC 3339)',
  })
  @IsOptional()
  @QueryTimestamp('createdBefore')
  createdBefore?: string;

  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 200, default: DEFAULT_LIST_LIMIT })
  @IsOptional()
  @QueryInt()
  @IsInt()
  @Min(1)
  @Max(200)
  limit?: number;

  /** Checked by decodeCursor, which says what is wrong with it. */
  @ApiPropertyOptional({ description: 'nextCursor of the previous page (opaque)' })
  @IsOptional()
  @IsString()
  cursor?: string;
}

/** The longest `GET /v1/executions/:id?wait=` may hold the request, in seconds. */
export const MAX_WAIT_SECONDS = 60;

export class GetExecutionQuery {
  @ApiPropertyOptional({
    type: 'integer',
    minimum: 0,
    maximum: MAX_WAIT_SECONDS,
    description:
      'Long-poll: answer as soon as the execution has ended, or after this many seconds ' +
      'with the current view. The way to wait for a job.',
  })
  @IsOptional()
  @QueryInt()
  @IsInt()
  @Min(0)
  @Max(MAX_WAIT_SECONDS)
  wait?: number;
}

export class LogsQuery {
  @ApiPropertyOptional({ format: 'uuid' })
  @IsOptional()
  @IsUUID('all', { message: 'serverId must be a server id (UUID)' })
  serverId?: string;

  @ApiPropertyOptional({ type: 'integer', minimum: 0, default: 0 })
  @IsOptional()
  @QueryInt()
  @IsInt()
  @Min(0)
  afterSeq?: number;

  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 10000, default: 1000 })
  @IsOptional()
  @QueryInt()
  @IsInt()
  @Min(1)
  @Max(10000)
  limit?: number;

  @ApiPropertyOptional({ enum: ['json', 'text'], default: 'json' })
  @IsOptional()
  @IsIn(['json', 'text'])
  format?: 'json' | 'text';
}
