import { Inject, Module, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { Subscription } from 'rxjs';
import { PersistenceModule } from '../persistence/persistence.module';
import { ClusterBus } from '../queue/cluster-bus';
import { QueueModule } from '../queue/queue.module';
import { RunnerCacheModule } from '../runner-cache/runner-cache.module';
import { RunnerCacheService } from '../runner-cache/runner-cache.service';
import { SshModule } from '../ssh/ssh.module';
import { SshPool } from '../ssh/ssh-pool.service';
import { ServerCheckService } from './server-check.service';
import { ServersController } from './servers.controller';
import { ServersService } from './servers.service';

/** Server inventory: CRUD, credentials sealed at rest, host-key pinning, tags. */
@Module({
  imports: [PersistenceModule, SshModule, RunnerCacheModule, QueueModule],
  controllers: [ServersController],
  providers: [ServersService, ServerCheckService],
  exports: [ServersService],
})
export class ServersModule implements OnModuleInit, OnModuleDestroy {
  private subscription?: Subscription;

  constructor(
    private readonly servers: ServersService,
    private readonly pool: SshPool,
    private readonly runnerCache: RunnerCacheService,
    @Inject(ClusterBus) private readonly bus: ClusterBus,
  ) {}

  /** Trust-on-first-use goes through the inventory; edited/deleted servers lose pooled connections. */
  onModuleInit(): void {
    this.pool.setHostKeyLearner((serverId, seen, ep) =>
      this.servers.learnHostKey(serverId, seen, ep),
    );
    // An edited server may be another machine now, a deleted one is gone: drop its
    // connections, its decrypted endpoint and what we believed about its runner, here and
    // on the other replicas.
    // (The service forgets its own endpoint of a server edited here.)
    const drop = (id: string) => {
      this.pool.evictServer(id);
      void this.runnerCache.forget(id).catch(() => undefined);
    };
    this.subscription = this.servers.changes$.subscribe((id) => {
      drop(id);
      this.bus.publishServerChanged(id);
    });
    this.bus.onServerChanged((id) => {
      this.servers.forgetEndpoint(id);
      drop(id);
    });
  }

  onModuleDestroy(): void {
    this.subscription?.unsubscribe();
  }
}
