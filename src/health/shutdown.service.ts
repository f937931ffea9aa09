import { INestApplicationContext, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { ExecutorService } from '../executor/executor.service';
import { JobsService } from '../jobs/jobs.service';
import { LifecycleService } from './lifecycle.service';

/**
 * The one owner of shutdown. On SIGTERM or SIGINT: readiness turns 503, new jobs get 503,
 * running executions get `shutdown.graceSeconds`, then are cancelled (remote trees
 * killed), the app closes and the process exits 0. In a cluster (REDIS_URL) or with
 * `shutdown.handover`, running targets are handed over instead: nothing is cancelled,
 * and another replica (or the next start) re-attaches. Nest's own shutdown hooks are not used:
 * they run the destroy hooks (websockets closed) before anything could drain, and end the
 * process by re-raising the signal instead of exiting 0.
 */
@Injectable()
export class ShutdownService implements OnApplicationShutdown {
  private readonly logger = new Logger(ShutdownService.name);
  private stopping = false;

  constructor(
    private readonly config: AppConfig,
    private readonly lifecycle: LifecycleService,
    private readonly jobs: JobsService,
    private readonly executor: ExecutorService,
  ) {}

  /** Runs the graceful shutdown of `app` on the first of these signals. */
  listen(app: INestApplicationContext, signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT']): void {
    for (const signal of signals) process.once(signal, () => void this.shutdown(app, signal));
  }

  private async shutdown(app: INestApplicationContext, signal: string): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.lifecycle.startDraining();
    this.jobs.stopAccepting();
    if (this.handsOver()) {
      this.logger.log(`${signal}: handing running targets over (they go on remotely)`);
      await this.executor.handover();
    } else {
      const grace = this.config.shutdown.graceSeconds;
      this.logger.log(`${signal}: draining (up to ${grace} s), then cancelling what is left`);
      await this.executor.drain(grace * 1000);
    }
    await app.close();
    process.exit(0);
  }

  /** In a cluster another replica re-attaches at once; alone, only when configured. */
  private handsOver(): boolean {
    return this.config.shutdown.handover || this.config.queue.redisUrl !== '';
  }

  /** An app closed without a signal (tests, embedding) cancels what still runs, at once. */
  async onApplicationShutdown(): Promise<void> {
    await this.executor.drain(0);
  }
}
