import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsInt, IsOptional, Max, Min } from 'class-validator';
import { QueryInt } from '../../common/validation';

/** `POST /v1/servers/:id/check?timeoutSeconds=`: the whole check answers within it. */
export class CheckQuery {
  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 120, default: 10 })
  @IsOptional()
  @QueryInt()
  @IsInt()
  @Min(1)
  @Max(120)
  timeoutSeconds?: number;
}
