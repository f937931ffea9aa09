import { Controller, Get, Inject, OnModuleDestroy } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { HealthCheck, HealthCheckService, HealthIndicatorService } from '@nestjs/terminus';
import { Public } from '../auth/public.decorator';
import { DatabaseProbe, DatabaseTimeoutError } from '../persistence/database-probe';
import { WorkQueue } from '../queue/work-queue';
import { RunnerCacheService } from '../runner-cache/runner-cache.service';
import { EventLoopLag } from './event-loop-lag';
import { LifecycleService } from './lifecycle.service';

/**
 * Liveness fails only when the event loop is stalled, not merely busy: a heavy websocket
 * fan-out can push p99 lag past a second without anything being wrong.
 */
const MAX_LAG_MS = 5000;
const DATABASE_TIMEOUT_MS = 2000;
const QUEUE_TIMEOUT_MS = 2000;

@ApiTags('health')
@Controller('health')
export class HealthController implements OnModuleDestroy {
  private readonly lag = new EventLoopLag();

  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly db: DatabaseProbe,
    private readonly runner: RunnerCacheService,
    private readonly lifecycle: LifecycleService,
    @Inject(WorkQueue) private readonly queue: WorkQueue,
  ) {}

  onModuleDestroy(): void {
    this.lag.stop();
  }

  /** The process is up and its event loop is not stalled. */
  @Public()
  @Get('live')
  @HealthCheck()
  live() {
    return this.health.check([() => this.eventLoop()]);
  }

  /** Ready for jobs: database (and Redis) reachable, runner artifact built, not shutting down. */
  @Public()
  @Get('ready')
  @HealthCheck()
  ready() {
    return this.health.check([
      () => this.database(),
      ...(this.queue.shared ? [() => this.redis()] : []),
      () => {
        const s = this.indicators.check('runner');
        try {
          const a = this.runner.artifact;
          return s.up({ version: a.version, sha256: a.hash });
        } catch (e: any) {
          return s.down({ message: e?.message ?? 'runner artifact unavailable' });
        }
      },
      () => {
        const s = this.indicators.check('lifecycle');
        return this.lifecycle.isDraining ? s.down({ message: 'shutting down' }) : s.up();
      },
      () => this.eventLoop(),
    ]);
  }

  private async database() {
    const s = this.indicators.check('database');
    try {
      await this.db.ping(DATABASE_TIMEOUT_MS);
      return s.up();
    } catch (e) {
      return e instanceof DatabaseTimeoutError ? s.down(e.message) : s.down();
    }
  }

  private async redis() {
    const s = this.indicators.check('redis');
    try {
      await this.queue.ping(QUEUE_TIMEOUT_MS);
      return s.up();
    } catch (e: any) {
      return s.down({ message: `Redis unreachable: ${e?.message ?? e}` });
    }
  }

  private eventLoop() {
    const s = this.indicators.check('eventLoop');
    const lagMs = Math.round(this.lag.p99Ms * 10) / 10;
    return lagMs > MAX_LAG_MS ? s.down({ lagMs }) : s.up({ lagMs });
  }
}
