import { Injectable, Logger } from '@nestjs/common';
import type { Duplex } from 'node:stream';
import type { Client } from 'ssh2';
import { TargetError } from '../common/error-codes';
import type { PooledConnection } from '../ssh/ssh.types';

export interface Tunnel {
  /** The port sshd bound on the remote host's 127.0.0.1. */
  port: number;
  close(): Promise<void>;
}

type Handler = (stream: Duplex) => void;

/**
 * Per-execution reverse tunnels: `forwardIn('127.0.0.1', 0)` makes sshd pick a free port
 * on the remote loopback, so concurrent executions on one server never collide. Every
 * connection arriving on that port is handed to the given handler (the runtime-helper
 * API), and nothing else.
 */
@Injectable()
export class TunnelService {
  private readonly logger = new Logger(TunnelService.name);
  private readonly routes = new WeakMap<Client, Map<number, Handler>>();

  async open(conn: PooledConnection, handler: Handler, timeoutMs = 10000): Promise<Tunnel> {
    const client = conn.client;
    let table = this.routes.get(client);
    if (!table) {
      const routes = new Map<number, Handler>();
      table = routes;
      this.routes.set(client, routes);
      client.on('tcp connection', (info, accept, reject) => {
        const h = routes.get(info.destPort);
        if (!h || info.destIP !== '127.0.0.1') return reject();
        const stream = accept();
        stream.on('error', () => undefined);
        h(stream);
      });
    }
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new TargetError('tunnel_failed', 'the server did not answer the port-forward request'),
          ),
        timeoutMs,
      );
      try {
        client.forwardIn('127.0.0.1', 0, (err, bound) => {
          clearTimeout(timer);
          if (err) {
            reject(
              new TargetError('tunnel_failed', `remote port forwarding refused: ${err.message}`),
            );
          } else resolve(bound);
        });
      } catch (e: any) {
        clearTimeout(timer);
        reject(
          new TargetError(
            conn.closed ? 'connection_lost' : 'tunnel_failed',
            e?.message ?? String(e),
          ),
        );
      }
    });
    table.set(port, handler);
    const routes = table;
    return {
      port,
      close: () =>
        new Promise<void>((resolve) => {
          routes.delete(port);
          if (conn.closed) return resolve();
          try {
            client.unforwardIn('127.0.0.1', port, (err) => {
              if (err) this.logger.debug(`unforward ${port}: ${err.message}`);
              resolve();
            });
          } catch {
            resolve();
          }
        }),
    };
  }
}
