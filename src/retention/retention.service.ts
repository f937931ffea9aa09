import { Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { MetricsService } from '../metrics/metrics.service';
import { RetentionRepository, SWEPT_KINDS, SweptKind } from './retention.repository';

const DAY_MS = 24 * 3600 * 1000;
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

export type SweepCounts = Record<SweptKind, number>;

/**
 * The retention sweep: finished executions older than `retention.days`, or beyond the
 * newest `retention.maxExecutions` finished ones, go with their targets, events and
 * notifications. Every DELETE is bounded (`retention.batchSize` rows) and the event loop
 * gets a turn after each, so running jobs and requests never wait behind it. Executions
 * that have not ended and variables are never touched. Replicas may sweep at once: the
 * deletes are idempotent, and each replica's schedule starts at a random offset.
 */
@Injectable()
export class RetentionService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(RetentionService.name);
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<SweepCounts> | null = null;
  private stopped = false;

  constructor(
    private readonly config: AppConfig,
    private readonly repo: RetentionRepository,
    private readonly metrics: MetricsService,
  ) {}

  onModuleInit(): void {
    const every = this.config.retention.intervalSeconds * 1000;
    if (!every) return;
    // The first sweep at a random point of the first interval (at most a minute in), then
    // one an interval after each sweep has ended.
    const schedule = (delay: number) => {
      this.timer = setTimeout(() => {
        void this.sweep()
          .catch((e) => this.logger.warn(`retention sweep failed: ${(e as Error).message}`))
          .finally(() => !this.stopped && schedule(every));
      }, delay);
      this.timer.unref();
    };
    schedule(Math.random() * Math.min(every, 60_000));
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
  }

  /** One sweep (joins the one under way, if any); what it deleted, by kind. */
  sweep(now = Date.now()): Promise<SweepCounts> {
    if (!this.running) {
      this.running = this.sweepOnce(now).finally(() => (this.running = null));
    }
    return this.running;
  }

  private async sweepOnce(now: number): Promise<SweepCounts> {
    const started = Date.now();
    const { days, maxExecutions, batchSize } = this.config.retention;
    const counts = Object.fromEntries(SWEPT_KINDS.map((k) => [k, 0])) as SweepCounts;
    const finishedBefore = days > 0 ? now - days * DAY_MS : -1;
    const createdBefore = maxExecutions > 0 ? await this.repo.createdAtCutoff(maxExecutions) : -1;
    if (finishedBefore < 0 && createdBefore < 0) return counts;
    while (!this.stopped) {
      const ids = await this.repo.expired(finishedBefore, createdBefore, batchSize);
      if (!ids.length) break;
      for (const id of ids) {
        for (const kind of SWEPT_KINDS) {
          for (;;) {
            if (this.stopped) break;
            const n = await this.repo.deleteSome(kind, id, batchSize);
            counts[kind] += n;
            if (n) this.metrics.retentionDeleted.inc({ kind }, n);
            await turn();
            if (n < batchSize) break;
          }
        }
      }
    }
    if (SWEPT_KINDS.some((k) => counts[k] > 0)) {
      this.logger.log({ msg: 'retention sweep', deleted: counts, ms: Date.now() - started });
    }
    return counts;
  }
}
