import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  IsArray,
  IsBoolean,
  IsDefined,
  IsIn,
  IsInt,
  IsObject,
  IsOptional,
  IsString,
  IsUUID,
  Matches,
  Max,
  MaxLength,
  Min,
  ValidateNested,
  ValidatorConstraint,
  ValidatorConstraintInterface,
  Validate,
} from 'class-validator';
import { IsOptionalNotNull, RawJson } from '../../common/validation';
import { ANY_JSON } from '../../openapi/schemas';
import { NotifyDto } from '../../notifications/notify.dto';
import { HELPER_MODES, HelperMode, SCRIPT_TYPES, ScriptType } from '../../executions/request';
import { BECOME_USER_RE } from '../../runner/protocol';

export const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** What is wrong with a job's `env` map, or null (undefined: no env). */
export function envProblem(value: unknown): string | null {
  if (value === undefined || value === null) return null; // null: no env, as for the others
  const problem = (why: string) => `env: ${why}`;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return problem('must be an object of NAME: "value" pairs');
  }
  for (const [k, v] of Object.entries(value)) {
    if (!ENV_NAME_RE.test(k) || k.length > 128) {
      return problem(`name ${JSON.stringify(k.slice(0, 64))} must match ^[A-Za-z_][A-Za-z0-9_]*$`);
    }
    if (/^CRONIUM_/i.test(k)) return problem(`name ${k} uses the reserved CRONIUM_ prefix`);
    if (typeof v !== 'string') return problem(`${k} must be a string`);
    if (v.includes('\0')) return problem(`${k} must not contain NUL bytes`);
  }
  return null;
}

@ValidatorConstraint({ name: 'maxErrors' })
class MaxErrorsRule implements ValidatorConstraintInterface {
  validate(value: unknown): boolean {
    if (value === undefined || value === null) return true;
    if (typeof value === 'number')
      return Number.isInteger(value) && value >= 0 && value <= 1_000_000;
    if (typeof value === 'string') {
      const m = /^(\d{1,3})%$/.exec(value);
      return !!m && Number(m[1]) <= 100;
    }
    return false;
  }
  defaultMessage(): string {
    return 'maxErrors must be a non-negative integer or a percentage like "10%"';
  }
}

@ValidatorConstraint({ name: 'batchSize' })
class BatchSizeRule implements ValidatorConstraintInterface {
  validate(value: unknown): boolean {
    if (typeof value === 'number') return Number.isInteger(value) && value >= 1 && value <= 10000;
    if (typeof value === 'string') {
      const m = /^([1-9]\d{0,2})%$/.exec(value);
      return !!m && Number(m[1]) <= 100;
    }
    return false;
  }
  defaultMessage(): string {
    return 'size must be an integer from 1 to 10000 or a percentage from "1%" to "100%"';
  }
}

/** The longest pause between two batches. */
export const MAX_BATCH_PAUSE_SECONDS = 3600;

/** Rolling batches: targets run batch after batch, in the execution's target order. */
export class BatchDto {
  @ApiProperty({
    oneOf: [
      { type: 'integer', minimum: 1 },
      { type: 'string', example: '25%' },
    ],
    description: 'Targets per batch: a count, or "N%" of the targets (rounded up, at least 1)',
  })
  @IsDefined()
  @Validate(BatchSizeRule)
  size!: number | string;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: 0,
    maximum: 100,
    description:
      'When more than this percentage of a batch fails, the batches after it are skipped',
  })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(100)
  maxFailPercentage?: number;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: 0,
    maximum: MAX_BATCH_PAUSE_SECONDS,
    default: 0,
  })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(MAX_BATCH_PAUSE_SECONDS)
  pauseSeconds?: number;
}

export class ScriptDto {
  @ApiProperty({ enum: [...SCRIPT_TYPES] })
  @IsIn(SCRIPT_TYPES)
  type!: ScriptType;

  @ApiProperty({ description: 'The script body (size limit: limits.maxScriptBytes)' })
  @IsString()
  content!: string;
}

export class TargetsDto {
  @ApiPropertyOptional({ type: [String], format: 'uuid' })
  @IsOptionalNotNull()
  @IsArray()
  @ArrayMaxSize(10000)
  @IsUUID('all', { each: true, message: 'targets.serverIds must contain server ids (UUIDs)' })
  serverIds?: string[];

  @ApiPropertyOptional({ type: [String] })
  @IsOptionalNotNull()
  @IsArray()
  @ArrayMaxSize(100)
  @Matches(/^[A-Za-z0-9_.:-]{1,64}$/, { each: true, message: 'targets.tags must be tag names' })
  tags?: string[];
}

/** `become`: run the script as another user on each server, through sudo. */
export class BecomeDto {
  @ApiPropertyOptional({
    default: 'root',
    pattern: BECOME_USER_RE.source,
    description: 'the user the script runs as (a POSIX user name)',
  })
  @IsOptional()
  @IsString({ message: 'user must be a string' })
  @Matches(BECOME_USER_RE, {
    message: `user must be a POSIX user name matching ${BECOME_USER_RE.source}`,
  })
  user?: string;

  @ApiProperty({
    enum: ['sudo'],
    description:
      "sudo -u <user>: passwordless, or with the server's write-only becomePassword fed on stdin (sudo -S)",
  })
  @IsIn(['sudo'], { message: 'method must be "sudo"' })
  method!: 'sudo';
}

export class CreateJobDto {
  @ApiPropertyOptional() @IsOptional() @IsString() @MaxLength(200) name?: string;
  @ApiPropertyOptional() @IsOptional() @IsString() @MaxLength(200) jobId?: string;
  @ApiPropertyOptional() @IsOptional() @IsString() @MaxLength(200) eventId?: string;

  @ApiPropertyOptional({ description: 'Scopes runtime variables; `default` when absent' })
  @IsOptional()
  @Matches(/^[A-Za-z0-9_.:@-]{1,200}$/, { message: 'userId must be 1-200 of [A-Za-z0-9_.:@-]' })
  userId?: string;

  @ApiProperty({ type: ScriptDto })
  @IsDefined()
  @IsObject()
  @ValidateNested()
  @Type(() => ScriptDto)
  script!: ScriptDto;

  @ApiProperty({ type: TargetsDto })
  @IsDefined()
  @IsObject()
  @ValidateNested()
  @Type(() => TargetsDto)
  targets!: TargetsDto;

  @ApiPropertyOptional({ type: 'object', additionalProperties: { type: 'string' } })
  @RawJson(envProblem)
  env?: Record<string, string>;

  @ApiPropertyOptional({
    ...ANY_JSON,
    description: 'Any JSON; available to the script via cronium.input()',
  })
  @RawJson()
  input?: unknown;

  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 7 * 24 * 3600 })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(7 * 24 * 3600)
  timeoutSeconds?: number;

  @ApiPropertyOptional({
    type: BecomeDto,
    description:
      "run the script as another user (its HOME, USER and sudo's PATH); runtime helpers are not available then",
  })
  @IsOptional()
  @IsObject({ message: 'become must be an object like {"user": "root", "method": "sudo"}' })
  @ValidateNested()
  @Type(() => BecomeDto)
  become?: BecomeDto;

  @ApiPropertyOptional({ enum: [...HELPER_MODES], default: 'auto' })
  @IsOptional()
  @IsIn(HELPER_MODES)
  helperMode?: HelperMode;

  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 10000, default: 50 })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(10000)
  concurrency?: number;

  @ApiPropertyOptional({
    oneOf: [
      { type: 'integer', minimum: 0, maximum: 1_000_000 },
      { type: 'string', pattern: '^\\d{1,3}%$', example: '10%' },
    ],
  })
  @IsOptional()
  @Validate(MaxErrorsRule)
  maxErrors?: number | string;

  @ApiPropertyOptional() @IsOptional() @IsBoolean() failFast?: boolean;

  @ApiPropertyOptional({ type: BatchDto })
  @IsOptional()
  @IsObject()
  @ValidateNested()
  @Type(() => BatchDto)
  batch?: BatchDto;

  @ApiPropertyOptional({
    type: NotifyDto,
    description: 'POST the summary here once the execution ends (signed when a secret is given)',
  })
  @IsOptional()
  @IsObject()
  @ValidateNested()
  @Type(() => NotifyDto)
  notify?: NotifyDto;
}
