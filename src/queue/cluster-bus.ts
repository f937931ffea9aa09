import { Logger } from '@nestjs/common';
import type Redis from 'ioredis';
import type { ExecutionEvent } from '../status/execution-event';

type EventsListener = (events: ExecutionEvent[]) => void;
type CancelListener = (executionId: string) => void;
type ServerListener = (serverId: string) => void;

/**
 * What replicas tell each other: stored execution events (for websocket subscribers
 * elsewhere), cancel requests and servers that changed. One process: nobody to tell.
 */
export class ClusterBus {
  protected eventListeners: EventsListener[] = [];
  protected cancelListeners: CancelListener[] = [];
  protected serverListeners: ServerListener[] = [];

  /** Events just stored by this replica. */
  publishEvents(_events: ExecutionEvent[]): void {}

  publishCancel(_executionId: string): Promise<void> {
    return Promise.resolve();
  }

  /** Events stored by other replicas, in the order each stored them. */
  onEvents(listener: EventsListener): void {
    this.eventListeners.push(listener);
  }

  onCancel(listener: CancelListener): void {
    this.cancelListeners.push(listener);
  }

  /** A server was edited or deleted here: the others drop what they keep of it. */
  publishServerChanged(_serverId: string): void {}

  /** Servers edited or deleted on other replicas. */
  onServerChanged(listener: ServerListener): void {
    this.serverListeners.push(listener);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

interface Envelope {
  from: string;
  events?: ExecutionEvent[];
  cancel?: string;
  server?: string;
}

/** Redis pub/sub: one channel per cluster (the queue prefix), messages tagged with the sender. */
export class RedisClusterBus extends ClusterBus {
  private readonly logger = new Logger(RedisClusterBus.name);
  private readonly channel: string;

  constructor(
    private readonly pub: Redis,
    private readonly sub: Redis,
    prefix: string,
    private readonly replicaId: string,
  ) {
    super();
    this.channel = `${prefix}:bus`;
    sub.on('message', (channel, message) => {
      if (channel === this.channel) this.receive(message);
    });
    sub.subscribe(this.channel).catch((e) => this.logger.warn(`subscribe: ${e?.message ?? e}`));
  }

  override publishEvents(events: ExecutionEvent[]): void {
    if (!events.length) return;
    this.send({ from: this.replicaId, events }).catch((e) =>
      this.logger.warn(`publishing ${events.length} events: ${e?.message ?? e}`),
    );
  }

  /** Does not wait for Redis: the owner also finds the stored request at its next heartbeat. */
  override publishCancel(executionId: string): Promise<void> {
    this.send({ from: this.replicaId, cancel: executionId }).catch((e) =>
      this.logger.warn(`publishing the cancel of ${executionId}: ${e?.message ?? e}`),
    );
    return Promise.resolve();
  }

  override publishServerChanged(serverId: string): void {
    this.send({ from: this.replicaId, server: serverId }).catch((e) =>
      this.logger.warn(`publishing the change of server ${serverId}: ${e?.message ?? e}`),
    );
  }

  override async close(): Promise<void> {
    this.sub.disconnect();
    await this.pub.quit().catch(() => this.pub.disconnect());
  }

  private async send(envelope: Envelope): Promise<void> {
    await this.pub.publish(this.channel, JSON.stringify(envelope));
  }

  private receive(message: string): void {
    let envelope: Envelope;
    try {
      envelope = JSON.parse(message);
    } catch {
      return;
    }
    if (envelope.from === this.replicaId) return;
    try {
      if (envelope.events) for (const l of this.eventListeners) l(envelope.events);
      if (typeof envelope.cancel === 'string') {
        for (const l of this.cancelListeners) l(envelope.cancel);
      }
      if (typeof envelope.server === 'string') {
        for (const l of this.serverListeners) l(envelope.server);
      }
    } catch (e: any) {
      this.logger.error(`handling a message from ${envelope.from}: ${e?.stack ?? e}`);
    }
  }
}
