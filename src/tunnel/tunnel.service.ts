import { Injectable, Logger } from '@nestjs/common';
import type { Duplex } from 'node:stream';
import { setImmediate as afterThisTurn } from 'node:timers/promises';
import { withTimeout } from '../common/with-timeout';
import { TargetError } from '../executions/error-codes';
import type { PooledConnection } from '../ssh/ssh.types';

export interface Tunnel {
  /** The port sshd bound on the remote host's 127.0.0.1 (0 for a Unix-socket tunnel). */
  port: number;
  /** The remote Unix socket's path, for a Unix-socket tunnel. */
  socketPath: string | null;
  close(): Promise<void>;
}

type Handler = (stream: Duplex) => void;

/**
 * Per-target reverse tunnels: `forwardIn('127.0.0.1', 0)` makes sshd pick a free port on
 * the remote loopback, so concurrent targets on one server never collide. Every
 * connection arriving on that port is handed to the given handler (the runtime-helper
 * API), and nothing else. `openSocket` does the same on a remote Unix socket, which only
 * the SSH user can reach. Built only on the pooled connection's forwarding operations.
 */
@Injectable()
export class TunnelService {
  private readonly logger = new Logger(TunnelService.name);
  private readonly routes = new WeakMap<PooledConnection, Map<string, Handler>>();

  /** A port already forwarded per connection, so a job's tunnel is ready when it asks. */
  private readonly standby = new WeakMap<PooledConnection, Promise<number | null>>();

  /**
   * Forwards a remote loopback port to `handler`. `port` 0 lets sshd pick one (a standby
   * one when ready); a given port asks for exactly that one (a re-attach keeps the
   * script's endpoint).
   */
  async open(
    conn: PooledConnection,
    handler: Handler,
    timeoutMs = 10000,
    wanted = 0,
  ): Promise<Tunnel> {
    let port: number | null = null;
    if (wanted === 0) {
      const ready = this.standby.get(conn);
      this.standby.delete(conn);
      port = ready ? await ready : null;
    }
    if (port == null || conn.closed) port = await this.forward(conn, timeoutMs, wanted);
    const bound = port;
    const tunnel = this.routed(conn, `tcp:${bound}`, handler, bound, null, () =>
      conn.unforwardIn('127.0.0.1', bound),
    );
    // This server forwards: have the next job's port ready too (off its critical path:
    // asked for after this turn of the event loop, once this job's payload is written;
    // each request's write wakes sshd, which would take the CPU from it). One standby per
    // connection, so concurrent jobs never leave stray forwards behind.
    if (!this.standby.has(conn) && !conn.closed) {
      this.standby.set(
        conn,
        afterThisTurn()
          .then(() => (conn.closed ? null : this.forward(conn, timeoutMs)))
          .catch(() => null),
      );
    }
    return tunnel;
  }

  /**
   * Forwards the remote Unix socket `path` (absolute; its directory must exist and be the
   * SSH user's own) to `handler`. The socket file is left for the caller to remove.
   */
  async openSocket(
    conn: PooledConnection,
    path: string,
    handler: Handler,
    timeoutMs = 10000,
  ): Promise<Tunnel> {
    await this.bounded(conn.forwardInSocket(path), timeoutMs);
    return this.routed(conn, `unix:${path}`, handler, 0, path, () => conn.unforwardInSocket(path));
  }

  /** Routes `key`'s incoming connections to `handler`; close() drops the route and the forward. */
  private routed(
    conn: PooledConnection,
    key: string,
    handler: Handler,
    port: number,
    socketPath: string | null,
    unforward: () => Promise<void>,
  ): Tunnel {
    const routes = this.tableFor(conn);
    routes.set(key, handler);
    return {
      port,
      socketPath,
      close: async () => {
        routes.delete(key); // from now on its connections are refused
        await afterThisTurn(); // behind the answer to whoever waits for this job
        await unforward().catch((err) =>
          this.logger.debug(`unforward ${key}: ${err?.message ?? err}`),
        );
      },
    };
  }

  private tableFor(conn: PooledConnection): Map<string, Handler> {
    let table = this.routes.get(conn);
    if (!table) {
      const routes = new Map<string, Handler>();
      table = routes;
      this.routes.set(conn, routes);
      conn.onForwardedConnection((info, accept, reject) => {
        const h =
          info.socketPath != null
            ? routes.get(`unix:${info.socketPath}`)
            : info.destIP === '127.0.0.1'
              ? routes.get(`tcp:${info.destPort}`)
              : undefined;
        if (!h) return reject();
        const stream = accept();
        stream.on('error', () => undefined);
        h(stream);
      });
    }
    return table;
  }

  private forward(conn: PooledConnection, timeoutMs: number, port = 0): Promise<number> {
    return this.bounded(conn.forwardIn('127.0.0.1', port), timeoutMs);
  }

  private bounded<T>(request: Promise<T>, timeoutMs: number): Promise<T> {
    return withTimeout(
      request,
      timeoutMs,
      () => new TargetError('tunnel_failed', 'the server did not answer the port-forward request'),
    );
  }
}
