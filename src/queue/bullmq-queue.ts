import { Logger } from '@nestjs/common';
import { DelayedError, Job, Queue, Worker } from 'bullmq';
import type Redis from 'ioredis';
import type { QueueConfig } from '../config/app-config';
import { withTimeout } from '../common/with-timeout';
import { WorkHandler, WorkQueue } from './work-queue';

const QUEUE_NAME = 'executions';

interface ExecutionJob {
  executionId: string;
}

/**
 * BullMQ on Redis: one job per execution, its id the execution id (a second submit of a
 * queued execution is a no-op). A replica that dies stops renewing its jobs' locks;
 * BullMQ's stalled-job check hands them to another replica, whose handler re-attaches.
 * Jobs carry only the id: the job itself is sealed in the database.
 */
export class BullQueue extends WorkQueue {
  readonly shared = true;
  private readonly logger = new Logger(BullQueue.name);
  private readonly queue: Queue<ExecutionJob>;
  private worker: Worker<ExecutionJob> | null = null;

  constructor(
    private readonly config: QueueConfig,
    private readonly connection: Redis,
  ) {
    super();
    this.queue = new Queue<ExecutionJob>(QUEUE_NAME, {
      connection,
      prefix: config.prefix,
      defaultJobOptions: { removeOnComplete: true, removeOnFail: 1000 },
    });
    this.queue.on('error', (e) => this.logger.warn(`queue: ${e?.message ?? e}`));
  }

  /**
   * Never waits on Redis: the execution is already stored, so a submit during an outage
   * is queued by ioredis until Redis is back (or, if that fails, by the replicas' sweep of
   * stale executions). The caller gets its 202 either way.
   */
  submit(executionId: string): Promise<void> {
    this.queue
      .add('execution', { executionId }, { jobId: executionId })
      .catch((e) => this.logger.warn(`queueing ${executionId}: ${e?.message ?? e}`));
    return Promise.resolve();
  }

  consume(handler: WorkHandler): void {
    const { config } = this;
    this.worker = new Worker<ExecutionJob>(
      QUEUE_NAME,
      async (job: Job<ExecutionJob>, token?: string) => {
        const result = await handler(job.data.executionId);
        if (result === 'done') return;
        // Not ours to drive now: back to the queue, at once when we let go of it.
        const delay = result === 'busy' ? config.retryDelayMs : 0;
        await job.moveToDelayed(Date.now() + delay, token);
        throw new DelayedError();
      },
      {
        connection: this.connection.duplicate(),
        prefix: config.prefix,
        concurrency: config.workerConcurrency,
        lockDuration: config.lockDurationMs,
        stalledInterval: config.stalledIntervalMs,
        // A job stalls each time its replica dies; that is a take-over, not a failure.
        maxStalledCount: 1000,
      },
    );
    this.worker.on('error', (e) => this.logger.warn(`worker: ${e?.message ?? e}`));
    this.worker.on('failed', (job, e) =>
      this.logger.error(`execution ${job?.data.executionId}: ${e?.message ?? e}`),
    );
  }

  /** False, at once, when Redis does not answer (the stored cancel request still holds). */
  async removeWaiting(executionId: string): Promise<boolean> {
    try {
      return await withTimeout(
        (async () => {
          const job = await this.queue.getJob(executionId);
          if (!job || (await job.getState()) !== 'waiting') return false;
          await job.remove();
          return true;
        })(),
        this.config.connectTimeoutMs,
      );
    } catch {
      return false; // picked up meanwhile, or Redis away
    }
  }

  async stopConsuming(): Promise<void> {
    await this.worker?.pause(true);
  }

  async ping(timeoutMs: number): Promise<void> {
    await withTimeout(this.connection.ping(), timeoutMs);
  }

  async close(): Promise<void> {
    await this.worker?.close(true).catch(() => undefined);
    await this.queue.close().catch(() => undefined);
    this.connection.disconnect();
  }
}
