import {
  Controller,
  Get,
  Inject,
  Logger,
  OnModuleDestroy,
  Res,
  ServiceUnavailableException,
} from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import {
  HealthCheck,
  HealthCheckResult,
  HealthCheckService,
  HealthIndicatorFunction,
  HealthIndicatorService,
} from '@nestjs/terminus';
import type { Response } from 'express';
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
  private readonly logger = new Logger('Health');
  /** Per probe, the checks that were down at its last answer ('' when all were up). */
  private readonly lastDown = new Map<string, string>();

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
  @ApiOperation({
    summary: 'Liveness probe',
    description: 'Up unless the event loop is stalled (p99 lag over 5 s). No token needed.',
  })
  @Get('live')
  @HealthCheck()
  live(@Res({ passthrough: true }) res: Response) {
    return this.probe('liveness', res, [() => this.eventLoop()]);
  }

  /** Ready for jobs: database (and Redis) reachable, runner artifact built, not shutting down. */
  @Public()
  @ApiOperation({
    summary: 'Readiness probe',
    description:
      'Up when the database (and Redis) answer, the runner artifact is built and the ' +
      'service is not shutting down. No token needed.',
  })
  @Get('ready')
  @HealthCheck()
  ready(@Res({ passthrough: true }) res: Response) {
    return this.probe('readiness', res, [
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

  /**
   * Terminus' answer, `{status, info, error, details}`, on 200 and on 503 alike (the global
   * filter would flatten a 503 into the error body). A probe that turns down logs one warn,
   * one that is up again one info line: a failing probe polled every second is not a line
   * a second.
   */
  private async probe(
    name: string,
    res: Response,
    checks: HealthIndicatorFunction[],
  ): Promise<HealthCheckResult> {
    let result: HealthCheckResult;
    try {
      result = await this.health.check(checks);
    } catch (e) {
      if (!(e instanceof ServiceUnavailableException)) throw e;
      result = e.getResponse() as HealthCheckResult;
      res.status(503);
    }
    const down = Object.keys(result.error ?? {}).sort();
    const was = this.lastDown.get(name) ?? '';
    const now = down.join(',');
    this.lastDown.set(name, now);
    if (now !== was) {
      if (down.length) {
        this.logger.warn({ msg: `${name} probe failing`, down, error: result.error });
      } else this.logger.log({ msg: `${name} probe passing again`, was: was.split(',') });
    }
    return result;
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
