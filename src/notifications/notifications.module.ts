import { Module } from '@nestjs/common';
import { PersistenceModule } from '../persistence/persistence.module';
import { NotificationsController } from './notifications.controller';
import { NotificationsRepository } from './notifications.repository';
import { NotificationsService } from './notifications.service';

/** Completion notifications: `notify` on a job, delivered once its execution ends. */
@Module({
  imports: [PersistenceModule],
  controllers: [NotificationsController],
  providers: [NotificationsRepository, NotificationsService],
  exports: [NotificationsService],
})
export class NotificationsModule {}
