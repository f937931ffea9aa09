import { Module } from '@nestjs/common';
import { PersistenceModule } from '../persistence/persistence.module';
import { RetentionRepository } from './retention.repository';
import { RetentionService } from './retention.service';

/** The periodic sweep of finished executions (retention.*). */
@Module({
  imports: [PersistenceModule],
  providers: [RetentionRepository, RetentionService],
  exports: [RetentionService],
})
export class RetentionModule {}
