import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsInt, IsOptional, IsString, IsUUID, Max, Min } from 'class-validator';
import { QueryInt } from '../../common/validation';
import { EXECUTION_STATUSES, ExecutionStatus } from '../../executions/statuses';

/** Page size of GET /v1/executions when `limit` is absent. */
export const DEFAULT_LIST_LIMIT = 50;

export class ListExecutionsQuery {
  @ApiPropertyOptional({ enum: [...EXECUTION_STATUSES] })
  @IsOptional()
  @IsIn(EXECUTION_STATUSES)
  status?: ExecutionStatus;

  @ApiPropertyOptional({ minimum: 1, maximum: 200, default: DEFAULT_LIST_LIMIT })
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

  @ApiPropertyOptional({ minimum: 0, default: 0 })
  @IsOptional()
  @QueryInt()
  @IsInt()
  @Min(0)
  afterSeq?: number;

  @ApiPropertyOptional({ minimum: 1, maximum: 10000, default: 1000 })
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
