import { ApiProperty } from '@nestjs/swagger';

/** A server as the API shows it: never its credentials. */
export class ServerView {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty() name!: string;
  @ApiProperty() host!: string;
  @ApiProperty({ type: 'integer', minimum: 1, maximum: 65535 }) port!: number;
  @ApiProperty() username!: string;
  @ApiProperty({ enum: ['key', 'password'] }) authType!: 'key' | 'password';
  @ApiProperty({ description: 'whether a becomePassword (sudo) is stored; it is never returned' })
  hasBecomePassword!: boolean;
  @ApiProperty({
    type: String,
    nullable: true,
    example: 'SHA256:0uI4Uv6strT1qUsl1DywImZFjFaGpRa8fAtRVebs2IU',
  })
  hostKeyFingerprint!: string | null;
  @ApiProperty({ type: String, nullable: true, example: 'ssh-ed25519' })
  hostKeyType!: string | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true })
  hostKeyPinnedAt!: string | null;
  @ApiProperty({
    type: String,
    enum: ['given', 'tofu', null],
    nullable: true,
    description: 'given by a caller (hostKey), or trusted on first use',
  })
  hostKeySource!: 'given' | 'tofu' | null;
  @ApiProperty({ type: [String] }) tags!: string[];
  @ApiProperty({ type: String, nullable: true, description: "the server's own baseDir, if set" })
  baseDir!: string | null;
  @ApiProperty({
    type: String,
    format: 'uuid',
    nullable: true,
    description: 'the server this one is reached through (ProxyJump), if any',
  })
  jumpServerId!: string | null;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty({ format: 'date-time' }) updatedAt!: string;
}

export class ServerCheckError {
  @ApiProperty({ example: 'connect_failed' }) code!: string;
  @ApiProperty() message!: string;
}

/** `POST /v1/servers/:id/check`. */
export class ServerCheckResult {
  @ApiProperty() ok!: boolean;
  @ApiProperty({ required: false }) fingerprint?: string;
  @ApiProperty({ required: false }) hostKeyType?: string;
  @ApiProperty({ required: false, description: 'whether the seen key is now the pinned key' })
  pinned?: boolean;
  @ApiProperty({ required: false, type: 'integer', minimum: 0 }) connectMs?: number;
  @ApiProperty({
    required: false,
    type: 'integer',
    minimum: 0,
    description: "round trip of exec('true')",
  })
  latencyMs?: number;
  @ApiProperty({ required: false, type: ServerCheckError }) error?: ServerCheckError;
}
