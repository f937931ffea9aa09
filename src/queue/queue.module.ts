import { Inject, Injectable, Module, OnApplicationShutdown } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { BullQueue } from './bullmq-queue';
import { ClusterBus, RedisClusterBus } from './cluster-bus';
import { InProcessQueue } from './in-process-queue';
import { redisConnection } from './redis';
import { WorkQueue } from './work-queue';

/** Closes the queue and the bus last, after the executor has handed its work over. */
@Injectable()
class QueueShutdown implements OnApplicationShutdown {
  constructor(
    @Inject(WorkQueue) private readonly queue: WorkQueue,
    @Inject(ClusterBus) private readonly bus: ClusterBus,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    await this.queue.close();
    await this.bus.close();
  }
}

/**
 * The work queue port and the replicas' bus: in-process and silent without REDIS_URL;
 * BullMQ and Redis pub/sub with it.
 */
@Module({
  providers: [
    {
      provide: WorkQueue,
      inject: [AppConfig],
      useFactory: (config: AppConfig): WorkQueue =>
        config.queue.redisUrl
          ? new BullQueue(config.queue, redisConnection(config.queue.redisUrl))
          : new InProcessQueue(),
    },
    {
      provide: ClusterBus,
      inject: [AppConfig],
      useFactory: (config: AppConfig): ClusterBus => {
        const url = config.queue.redisUrl;
        if (!url) return new ClusterBus();
        return new RedisClusterBus(
          redisConnection(url),
          redisConnection(url),
          config.queue.prefix,
          config.replicaId,
        );
      },
    },
    QueueShutdown,
  ],
  exports: [WorkQueue, ClusterBus],
})
export class QueueModule {}
