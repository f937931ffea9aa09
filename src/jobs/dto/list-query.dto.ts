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
