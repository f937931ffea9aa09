import { ApiPropertyOptional } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  IsArray,
  IsInt,
  IsOptional,
  IsString,
  Max,
  MaxLength,
  Min,
  MinLength,
} from 'class-validator';
import { BASE_DIR_MAX, NAME_MAX, SECRET_MAX, TAGS_MAX } from '../server-rules';
import {
  IsBaseDir,
  IsBecomePassword,
  IsHostKeyInput,
  IsOptionalNotNull,
  IsParsablePrivateKey,
  IsServerHost,
  IsServerId,
  IsServerName,
  IsSshUsername,
  IsTagList,
} from './server-validators';

/**
 * `PATCH /v1/servers/:id`: only the fields present change. Changing the host without a
 * new `hostKey` clears the pinned key (a new port or username keeps it: same machine).
 * `privateKey` or `password` replaces the stored credentials. `hostKey: null` unpins (the
 * next contact pins again, on first use), `baseDir: null` returns to the default.
 */
export class UpdateServerDto {
  @ApiPropertyOptional({ minLength: 1, maxLength: NAME_MAX })
  @IsOptionalNotNull()
  @IsServerName()
  name?: string;

  @ApiPropertyOptional()
  @IsOptionalNotNull()
  @IsServerHost()
  host?: string;

  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 65535 })
  @IsOptionalNotNull()
  @IsInt()
  @Min(1)
  @Max(65535)
  port?: number;

  @ApiPropertyOptional()
  @IsOptionalNotNull()
  @IsSshUsername()
  username?: string;

  @ApiPropertyOptional({ writeOnly: true })
  @IsOptionalNotNull()
  @IsString()
  @IsParsablePrivateKey()
  privateKey?: string;

  @ApiPropertyOptional({ writeOnly: true })
  @IsOptionalNotNull()
  @IsString()
  @MinLength(1)
  @MaxLength(SECRET_MAX)
  password?: string;

  @ApiPropertyOptional({
    writeOnly: true,
    description: 'with privateKey: its passphrase; alone: a new passphrase for the stored key',
  })
  @IsOptionalNotNull()
  @IsString()
  @MaxLength(SECRET_MAX)
  passphrase?: string;

  @ApiPropertyOptional({
    description:
      'a new sudo password for become; null removes it (passwordless sudo); never returned',
    type: String,
    writeOnly: true,
    nullable: true,
  })
  @IsOptional()
  @IsBecomePassword()
  becomePassword?: string | null;

  @ApiPropertyOptional({ type: String, nullable: true, description: 'new key to pin; null unpins' })
  @IsOptional()
  @IsString()
  @IsHostKeyInput()
  hostKey?: string | null;

  @ApiPropertyOptional({ type: [String], maxItems: TAGS_MAX })
  @IsOptionalNotNull()
  @IsArray()
  @ArrayMaxSize(TAGS_MAX)
  @IsTagList()
  tags?: string[];

  @ApiPropertyOptional({
    type: String,
    nullable: true,
    maxLength: BASE_DIR_MAX,
    description: 'null: default',
  })
  @IsOptional()
  @IsString()
  @IsBaseDir()
  baseDir?: string | null;

  @ApiPropertyOptional({
    type: String,
    format: 'uuid',
    nullable: true,
    description: 'the server to reach this one through (ProxyJump); null: directly',
  })
  @IsOptional()
  @IsString()
  @IsServerId()
  jumpServerId?: string | null;
}
