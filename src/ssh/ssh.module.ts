import { Module } from '@nestjs/common';
import { SshPool } from './ssh-pool.service';

/** The ssh2 connection pool: host-key checks, channel limits, retry, circuit breaker. */
@Module({ providers: [SshPool], exports: [SshPool] })
export class SshModule {}
