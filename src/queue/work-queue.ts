/** What driving an execution came to, as the queue needs to know it. */
export type DriveResult =
  /** It ended (or had already ended): the work is done. */
  | 'done'
  /** A live replica still owns it: offer it again later. */
  | 'busy'
  /** This replica is stopping and let go of it: give it to another replica at once. */
  | 'handed_over';

export type WorkHandler = (executionId: string) => Promise<DriveResult>;

/**
 * The work queue port. One unit of work is one execution, keyed by its id, so a
 * re-delivery is never a second execution: the handler claims it in the database and
 * re-attaches what already runs. In-process without Redis; BullMQ with REDIS_URL.
 */
export abstract class WorkQueue {
  /** True when several replicas share the work (BullMQ). */
  abstract readonly shared: boolean;
  /** Queues an execution; a no-op while it is queued already. */
  abstract submit(executionId: string): Promise<void>;
  /** Starts handing work to `handler`. */
  abstract consume(handler: WorkHandler): void;
  /** Drops an execution nobody has picked up yet; true when it was waiting. */
  abstract removeWaiting(executionId: string): Promise<boolean>;
  /** Takes no more work (shutdown); what is in hand goes on. */
  abstract stopConsuming(): Promise<void>;
  /** Rejects when the queue's backing store cannot be reached in time. */
  abstract ping(timeoutMs: number): Promise<void>;
  abstract close(): Promise<void>;
}
