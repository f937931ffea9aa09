import { Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { isUuid } from '../common/uuid';
import {
  ConnectedSocket,
  MessageBody,
  OnGatewayConnection,
  OnGatewayDisconnect,
  SubscribeMessage,
  WebSocketGateway,
} from '@nestjs/websockets';
import type { IncomingMessage } from 'node:http';
import { Subscription } from 'rxjs';
import type { RawData, WebSocket } from 'ws';
import { ServiceTokensService } from '../auth/service-tokens.service';
import { AppConfig } from '../config/app-config';
import { MetricsService } from '../metrics/metrics.service';
import { ExecutionEventsRepository } from '../persistence/execution-events.repository';
import { ExecutionsRepository } from '../persistence/executions.repository';
import { EventWriter } from './event-writer.service';
import { ExecutionEventsService } from './execution-events.service';
import { StatusConnection, StatusLimits, StatusSubscription } from './status-connection';
import { fromRow } from './status-update';

const MESSAGES = new Set(['subscribe', 'unsubscribe']);
/** Client messages are small JSON objects. */
const MAX_CLIENT_MESSAGE_BYTES = 64 * 1024;
/** RFC 6455 "policy violation": a missing or invalid token. */
const CLOSE_UNAUTHORIZED = 1008;
/**
 * Browsers cannot set headers on a websocket, and a `?token=` query is a URL: they offer
 * `cronium.v1` plus `cronium.token.<token>` as Sec-WebSocket-Protocol values instead. The
 * server answers with `cronium.v1` only, so the token is never echoed back.
 */
export const WS_PROTOCOL = 'cronium.v1';
export const WS_TOKEN_PROTOCOL_PREFIX = 'cronium.token.';

/** The subprotocol the server selects: `cronium.v1` when offered, else none. */
function selectProtocol(protocols: Set<string>): string | false {
  return protocols.has(WS_PROTOCOL) ? WS_PROTOCOL : false;
}

interface SubscribeRequest {
  executionId: string;
  serverId?: string;
  afterSeq: number;
}

/**
 * Websocket `/v1/status` (SPEC §4): per-execution status, log, result and summary events,
 * replayed from the database after `afterSeq`, then live, with no gap and no duplicate.
 * Plain RFC 6455 (WsAdapter); messages are `{"event": ..., "data": ...}` JSON text frames.
 */
@WebSocketGateway({
  path: '/v1/status',
  maxPayload: MAX_CLIENT_MESSAGE_BYTES,
  handleProtocols: selectProtocol,
})
export class StatusGateway
  implements OnGatewayConnection, OnGatewayDisconnect, OnModuleInit, OnModuleDestroy
{
  private readonly logger = new Logger(StatusGateway.name);
  private readonly connections = new Map<WebSocket, StatusConnection>();
  /** Live routing: one listener on the event stream, subscriptions looked up by execution. */
  private readonly live = new Map<string, Set<StatusSubscription>>();
  private stream?: Subscription;
  private readonly limits: StatusLimits;

  constructor(
    config: AppConfig,
    private readonly tokens: ServiceTokensService,
    private readonly events: ExecutionEventsService,
    private readonly writer: EventWriter,
    private readonly executions: ExecutionsRepository,
    private readonly stored: ExecutionEventsRepository,
    private readonly metrics: MetricsService,
  ) {
    this.limits = config.status;
  }

  /** Authenticates at the handshake: a bad or missing token closes 1008 before any data. */
  handleConnection(client: WebSocket, req?: IncomingMessage): void {
    const token =
      ServiceTokensService.fromHeader(req?.headers?.authorization) ??
      protocolToken(req?.headers?.['sec-websocket-protocol']) ??
      queryToken(req?.url);
    if (!this.tokens.isValid(token)) {
      client.close(CLOSE_UNAUTHORIZED, 'unauthorized');
      return;
    }
    const conn = new StatusConnection(client, this.limits);
    this.connections.set(client, conn);
    // Nest routes `subscribe` and `unsubscribe`; anything else gets an error here.
    client.on('message', (raw: RawData) => this.checkMessage(conn, raw));
  }

  handleDisconnect(client: WebSocket): void {
    const conn = this.connections.get(client);
    if (!conn) return;
    this.connections.delete(client);
    conn.close();
  }

  onModuleInit(): void {
    this.stream = this.events.feed$.subscribe((e) => {
      const subs = this.live.get(e.executionId);
      if (!subs) return;
      for (const sub of subs) {
        try {
          sub.onLive(e);
        } catch (err: any) {
          this.logger.error(`live update for ${e.executionId}: ${err?.stack ?? err}`);
        }
      }
    });
  }

  onModuleDestroy(): void {
    this.stream?.unsubscribe();
    for (const conn of this.connections.values()) conn.close();
    this.connections.clear();
    this.live.clear();
  }

  private addLive(sub: StatusSubscription): void {
    let set = this.live.get(sub.executionId);
    if (!set) this.live.set(sub.executionId, (set = new Set()));
    set.add(sub);
  }

  private removeLive(sub: StatusSubscription): void {
    const set = this.live.get(sub.executionId);
    if (!set?.delete(sub)) return;
    if (!set.size) this.live.delete(sub.executionId);
  }

  @SubscribeMessage('subscribe')
  onSubscribe(@ConnectedSocket() client: WebSocket, @MessageBody() data: unknown): void {
    const conn = this.connections.get(client);
    if (!conn) return; // not authenticated
    try {
      const req = parseSubscribe(data);
      if (typeof req === 'string') return conn.error(req);
      this.subscribe(conn, req);
    } catch (e: any) {
      this.logger.error(`subscribe: ${e?.stack ?? e}`);
      conn.error('internal error');
    }
  }

  @SubscribeMessage('unsubscribe')
  onUnsubscribe(@ConnectedSocket() client: WebSocket, @MessageBody() data: unknown): void {
    const conn = this.connections.get(client);
    if (!conn) return;
    const d = (data ?? {}) as Record<string, unknown>;
    if (typeof d !== 'object' || typeof d.executionId !== 'string' || !isUuid(d.executionId))
      return conn.error('unsubscribe: data.executionId must be an execution id (UUID)');
    if (d.serverId != null && (typeof d.serverId !== 'string' || !isUuid(d.serverId)))
      return conn.error('unsubscribe: data.serverId must be a server id (UUID)');
    for (const sub of [...conn.subs.values()]) {
      // Without serverId: every subscription to the execution; with it: that one only.
      if (sub.executionId !== d.executionId.toLowerCase()) continue;
      if (typeof d.serverId === 'string' && sub.serverId !== d.serverId.toLowerCase()) continue;
      sub.stop();
    }
  }

  /** Malformed JSON or an unknown event: Nest would drop it silently; say why instead. */
  private checkMessage(conn: StatusConnection, raw: RawData): void {
    let msg: any;
    try {
      msg = JSON.parse(raw.toString());
    } catch {
      return conn.error('messages must be JSON: {"event": "subscribe", "data": {...}}');
    }
    if (!msg || typeof msg !== 'object' || !MESSAGES.has(msg.event))
      conn.error('unknown message: event must be "subscribe" or "unsubscribe"');
  }

  private subscribe(conn: StatusConnection, req: SubscribeRequest): void {
    const key = `${req.executionId}/${req.serverId ?? '*'}`;
    conn.subs.get(key)?.stop(); // the same subscription again restarts it
    if (conn.subs.size >= this.limits.maxSubscriptionsPerSocket)
      return conn.error(
        `too many subscriptions on this socket (max ${this.limits.maxSubscriptionsPerSocket})`,
      );
    const sub = new StatusSubscription(conn, key, req.executionId, req.serverId, req.afterSeq);
    // Live first (buffered while replaying), so nothing emitted from now on can be missed.
    this.addLive(sub);
    conn.subs.set(key, sub);
    this.metrics.websocketSubscribers.inc();
    sub.onStop = () => {
      this.removeLive(sub);
      if (conn.subs.get(key) === sub) conn.subs.delete(key);
      this.metrics.websocketSubscribers.dec();
    };
    this.replay(conn, sub).catch((e) => {
      this.logger.error(`replay of ${req.executionId} failed: ${e?.stack ?? e}`);
      if (!sub.stopped) {
        sub.stop();
        conn.error(`subscription to ${req.executionId} failed: could not read its events`);
      }
    });
  }

  /** Stored events after afterSeq in pages, then the buffered live ones, then live. */
  private async replay(conn: StatusConnection, sub: StatusSubscription): Promise<void> {
    const exists = await this.executions.exists(sub.executionId);
    if (sub.stopped) return;
    if (!exists) {
      sub.stop();
      return conn.error(`execution ${sub.executionId} not found`);
    }
    do {
      // Everything emitted before the live buffering (re)started is stored after this.
      await this.writer.flush();
      for (;;) {
        if (sub.stopped) return;
        const rows = await this.stored.replayPage(
          sub.executionId,
          sub.lastSeq,
          this.limits.replayPage,
          sub.serverId,
        );
        if (sub.stopped) return;
        sub.onStored(rows.map(fromRow));
        if (sub.ended || rows.length < this.limits.replayPage) break;
        await sub.drained(); // pull the next page only once this one is on the socket
      }
      if (!sub.ended) await sub.drained(); // hand over with an empty queue
      if (sub.stopped) return;
    } while (!sub.goLive()); // the live buffer overflowed meanwhile: catch up again
    if (sub.stopped || sub.ended || this.events.isLive(sub.executionId)) return;
    // Not running here and no `end` after afterSeq: either not started yet, or it ended
    // at or before afterSeq — then there is nothing more to send, ever.
    const endSeq = await this.stored.endSeq(sub.executionId);
    if (endSeq !== null && !sub.stopped && !sub.ended) {
      sub.stop();
      conn.error(
        `execution ${sub.executionId} ended at seq ${endSeq}; there are no events after seq ${sub.lastSeq}`,
      );
    }
  }
}

/** `Sec-WebSocket-Protocol: cronium.v1, cronium.token.<token>` → token, or undefined. */
function protocolToken(header: string | string[] | undefined): string | undefined {
  const values = (Array.isArray(header) ? header.join(',') : (header ?? '')).split(',');
  for (const v of values) {
    const value = v.trim();
    if (
      value.startsWith(WS_TOKEN_PROTOCOL_PREFIX) &&
      value.length > WS_TOKEN_PROTOCOL_PREFIX.length
    )
      return value.slice(WS_TOKEN_PROTOCOL_PREFIX.length);
  }
  return undefined;
}

function queryToken(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return new URL(url, 'http://localhost').searchParams.get('token') ?? undefined;
  } catch {
    return undefined;
  }
}

/** Validates `subscribe` data; a string is the error to send back. */
function parseSubscribe(data: unknown): SubscribeRequest | string {
  if (!data || typeof data !== 'object' || Array.isArray(data))
    return 'subscribe: data must be an object {executionId, serverId?, afterSeq?}';
  const d = data as Record<string, unknown>;
  if (typeof d.executionId !== 'string' || !isUuid(d.executionId))
    return 'subscribe: data.executionId must be an execution id (UUID)';
  if (d.serverId !== undefined && d.serverId !== null) {
    if (typeof d.serverId !== 'string' || !isUuid(d.serverId))
      return 'subscribe: data.serverId must be a server id (UUID)';
  }
  const afterSeq = d.afterSeq ?? 0;
  if (typeof afterSeq !== 'number' || !Number.isSafeInteger(afterSeq) || afterSeq < 0)
    return 'subscribe: data.afterSeq must be an integer >= 0';
  return {
    executionId: d.executionId.toLowerCase(),
    serverId: typeof d.serverId === 'string' ? d.serverId.toLowerCase() : undefined,
    afterSeq,
  };
}
