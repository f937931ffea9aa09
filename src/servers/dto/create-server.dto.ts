import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
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

/** `POST /v1/servers`. Exactly one of `privateKey` and `password` is required. */
export class CreateServerDto {
  @ApiProperty({ example: 'web-1', minLength: 1, maxLength: NAME_MAX })
  @IsServerName()
  name!: string;

  @ApiProperty({ example: 'web-1.internal', description: 'hostname or IPv4/IPv6 address' })
  @IsServerHost()
  host!: string;

  @ApiPropertyOptional({ type: 'integer', default: 22, minimum: 1, maximum: 65535 })
  @IsOptionalNotNull()
  @IsInt()
  @Min(1)
  @Max(65535)
  port?: number;

  @ApiProperty({ example: 'deploy', pattern: '^[A-Za-z_][A-Za-z0-9_.-]{0,63}$' })
  @IsSshUsername()
  username!: string;

  @ApiPropertyOptional({
    description: 'OpenSSH/PEM private key; stored encrypted, never returned',
    writeOnly: true,
  })
  @IsOptionalNotNull()
  @IsString()
  @IsParsablePrivateKey()
  privateKey?: string;

  @ApiPropertyOptional({ description: 'stored encrypted, never returned', writeOnly: true })
  @IsOptionalNotNull()
  @IsString()
  @MinLength(1)
  @MaxLength(SECRET_MAX)
  password?: string;

  @ApiPropertyOptional({
    description: 'passphrase of an encrypted privateKey; stored encrypted, never returned',
    writeOnly: true,
  })
  @IsOptionalNotNull()
  @IsString()
  @MaxLength(SECRET_MAX)
  passphrase?: string;

  @ApiPropertyOptional({
    description:
      "the SSH user's sudo password, for jobs with become (fed to sudo -S on stdin); stored encrypted, never returned",
    type: String,
    writeOnly: true,
    nullable: true,
  })
  @IsOptional()
  @IsBecomePassword()
  becomePassword?: string | null;

  @ApiPropertyOptional({
    type: String,
    nullable: true,
    description:
      'the host key to pin: an OpenSSH public key line or a SHA256:… fingerprint. Without it the first key seen is pinned (unless the host-key policy is strict).',
    example: 'SHA256:0uI4Uv6strT1qUsl1DywImZFjFaGpRa8fAtRVebs2IU',
  })
  @IsOptional()
  @IsString()
  @IsHostKeyInput()
  hostKey?: string | null;

  @ApiPropertyOptional({ type: [String], maxItems: TAGS_MAX, example: ['web', 'eu-west'] })
  @IsOptionalNotNull()
  @IsArray()
  @ArrayMaxSize(TAGS_MAX)
  @IsTagList()
  tags?: string[];

  @ApiPropertyOptional({
    type: String,
    nullable: true,
    description: 'remote base directory; defaults to the configured runner.baseDir',
    example: '~/.cache/cronium',
    maxLength: BASE_DIR_MAX,
  })
  @IsOptional()
  @IsString()
  @IsBaseDir()
  baseDir?: string | null;

  @ApiPropertyOptional({
    type: String,
    format: 'uuid',
    nullable: true,
    description:
      'another inventory server to reach this one through (ProxyJump; chains up to ssh.maxJumpDepth). host and port are then the address as the jump host sees it; the jump host needs only AllowTcpForwarding.',
  })
  @IsOptional()
  @IsString()
  @IsServerId()
  jumpServerId?: string | null;
}
