import { Logger } from '@nestjs/common';
import { detachedFromRequest } from '../logging/logging.module';
import { WorkHandler, WorkQueue } from './work-queue';

/**
 * One process: submitting hands the execution straight to the handler. Nothing to lose
 * here: the execution and its sealed job are in the database, and a restart takes over
 * whatever was unfinished.
 */
export class InProcessQueue extends WorkQueue {
  readonly shared = false;
  private readonly logger = new Logger(InProcessQueue.name);
  private handler: WorkHandler | null = null;
  private stopped = false;

  submit(executionId: string): Promise<void> {
    const handler = this.handler;
    if (handler && !this.stopped) {
      // Called from the POST that submitted it; the execution outlives that request.
      detachedFromRequest(() => handler(executionId)).catch((e) =>
        this.logger.error({ msg: `execution failed: ${e?.stack ?? e}`, executionId }),
      );
    }
    return Promise.resolve();
  }

  consume(handler: WorkHandler): void {
    this.handler = handler;
  }

  removeWaiting(): Promise<boolean> {
    return Promise.resolve(false);
  }

  stopConsuming(): Promise<void> {
    this.stopped = true;
    return Promise.resolve();
  }

  ping(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return this.stopConsuming();
  }
}
