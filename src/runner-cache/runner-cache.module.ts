import { Module } from '@nestjs/common';
import { RunnerCacheService } from './runner-cache.service';

/** The runner artifact (content-hashed) and its per-server deployment cache. */
@Module({ providers: [RunnerCacheService], exports: [RunnerCacheService] })
export class RunnerCacheModule {}
