import { ExecutionEventEntity } from './execution-event.entity';
import { ExecutionTargetEntity } from './execution-target.entity';
import { ExecutionEntity } from './execution.entity';
import { NotificationAttemptEntity, NotificationEntity } from './notification.entity';
import { RunnerCacheEntity } from './runner-cache.entity';
import { ServerEntity } from './server.entity';
import { VariableEntity } from './variable.entity';

export * from './execution-event.entity';
export * from './execution-target.entity';
export * from './execution.entity';
export * from './notification.entity';
export * from './runner-cache.entity';
export * from './server.entity';
export * from './variable.entity';

export const ENTITIES = [
  ServerEntity,
  ExecutionEntity,
  ExecutionTargetEntity,
  ExecutionEventEntity,
  RunnerCacheEntity,
  VariableEntity,
  NotificationEntity,
  NotificationAttemptEntity,
];
