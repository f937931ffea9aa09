import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsIn, IsOptional } from 'class-validator';

export const RERUN_SCOPES = ['failed', 'all'] as const;
export type RerunScope = (typeof RERUN_SCOPES)[number];

/** `POST /v1/executions/:id/rerun`: which targets of the original run again. */
export class RerunDto {
  @ApiProperty({
    enum: RERUN_SCOPES,
    description: '`failed`: its failed, timed_out and cancelled targets; `all`: every target',
  })
  @IsIn(RERUN_SCOPES, { message: `only must be one of ${RERUN_SCOPES.join(', ')}` })
  only!: RerunScope;

  @ApiPropertyOptional({
    default: false,
    description: 'With only=failed, its skipped targets too (with only=all they are in anyway)',
  })
  @IsOptional()
  @IsBoolean()
  includeSkipped?: boolean;
}
