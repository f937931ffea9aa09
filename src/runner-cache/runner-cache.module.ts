import { Module } from '@nestjs/common';
import { PersistenceModule } from '../persistence/persistence.module';
import { RunnerCacheService } from './runner-cache.service';

/** The runner artifact (content-hashed) and its per-server deployment cache. */
@Module({
  imports: [PersistenceModule],
  providers: [RunnerCacheService],
  exports: [RunnerCacheService],
})
export class RunnerCacheModule {}
