import type { Client, ClientChannel } from 'ssh2';
import { TargetError } from '../executions/error-codes';
import { Semaphore } from '../common/semaphore';
import { ForwardedConnectionHandler, PooledConnection, SeenHostKey } from './ssh.types';

let nextId = 1;

/** One live SSH connection with a bounded number of concurrent channels. */
export class Connection implements PooledConnection {
  readonly id = nextId++;
  readonly slots: Semaphore;
  closed = false;
  lastUsed = Date.now();
  /** Open `forwardOut` tunnels: connections to servers behind this one as their jump host. */
  tunnels = 0;
  private readonly listeners = new Set<(err?: Error) => void>();
  private closeError?: Error;

  constructor(
    readonly key: string,
    readonly client: Client,
    readonly hostKey: SeenHostKey,
    readonly connectMs: number,
    maxChannels: number,
  ) {
    this.slots = new Semaphore(maxChannels);
    client.on('error', (err: Error) => {
      this.closeError = err;
    });
    client.on('close', () => this.markClosed());
  }

  get busy(): number {
    return this.slots.inUse;
  }

  exec(command: string, wire?: (channel: ClientChannel) => void): Promise<ClientChannel> {
    if (this.closed) return Promise.reject(this.lostError());
    return new Promise((resolve, reject) => {
      try {
        this.client.exec(command, (err, channel) => {
          if (err) {
            reject(
              this.closed
                ? this.lostError()
                : new TargetError(
                    'runner_error',
                    `cannot open an exec channel: ${err.message}`,
                    true,
                  ),
            );
            return;
          }
          wire?.(channel);
          resolve(channel);
        });
      } catch (err) {
        reject(this.closed ? this.lostError() : err);
      }
    });
  }

  /**
   * Opens a direct-tcpip channel from this host to `host:port` (this connection acts as a
   * jump host); the channel is the socket of the connection to the server behind it.
   * `name` is this host's, for the messages; `onChange` hears the tunnel count change.
   * A refusal is `connect_failed` (retryable unless forwarding is prohibited).
   */
  forwardOut(
    host: string,
    port: number,
    name: string,
    onChange: () => void,
  ): Promise<ClientChannel> {
    if (this.closed) return Promise.reject(this.lostError());
    return new Promise((resolve, reject) => {
      const fail = (err: any) =>
        reject(
          this.closed
            ? this.lostError()
            : new TargetError(
                'connect_failed',
                `jump host ${name} cannot open a connection to ${host}:${port}: ${err?.message ?? err}`,
                !/prohibited/i.test(String(err?.message)),
              ),
        );
      try {
        this.client.forwardOut('127.0.0.1', 0, host, port, (err, channel) => {
          if (err) return fail(err);
          this.tunnels++;
          this.lastUsed = Date.now();
          onChange();
          channel.once('close', () => {
            this.tunnels--;
            this.lastUsed = Date.now();
            onChange();
          });
          resolve(channel);
        });
      } catch (err) {
        fail(err);
      }
    });
  }

  forwardIn(address: string, port: number): Promise<number> {
    return this.request<number>((done) => this.client.forwardIn(address, port, done));
  }

  unforwardIn(address: string, port: number): Promise<void> {
    return this.cancel((done) => this.client.unforwardIn(address, port, done));
  }

  forwardInSocket(path: string): Promise<void> {
    return this.request<void>((done) => this.client.openssh_forwardInStreamLocal(path, done));
  }

  unforwardInSocket(path: string): Promise<void> {
    return this.cancel((done) => this.client.openssh_unforwardInStreamLocal(path, done));
  }

  onForwardedConnection(handler: ForwardedConnectionHandler): void {
    this.client.on('tcp connection', (info, accept, reject) => handler(info, accept, reject));
    this.client.on('unix connection', (info, accept, reject) =>
      handler(
        { destIP: '', destPort: 0, srcIP: '', srcPort: 0, socketPath: info.socketPath },
        accept,
        reject,
      ),
    );
  }

  /** A forwarding request: refusals are `tunnel_failed`, a lost connection `connection_lost`. */
  private request<T>(
    send: (done: (err: Error | null | undefined, v: T) => void) => void,
  ): Promise<T> {
    if (this.closed) return Promise.reject(this.lostError());
    return new Promise<T>((resolve, reject) => {
      const fail = (err: any) =>
        reject(
          this.closed
            ? this.lostError()
            : new TargetError(
                'tunnel_failed',
                `remote port forwarding refused: ${err?.message ?? String(err)}`,
              ),
        );
      try {
        send((err, v) => (err ? fail(err) : resolve(v)));
      } catch (err) {
        fail(err);
      }
    });
  }

  private cancel(send: (done: (err?: Error | null) => void) => void): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      try {
        send((err) => (err ? reject(err) : resolve()));
      } catch (err) {
        reject(err);
      }
    });
  }

  onClose(listener: (err?: Error) => void): () => void {
    if (this.closed) {
      queueMicrotask(() => listener(this.closeError));
      return () => undefined;
    }
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    if (this.closed) return;
    this.client.end();
    // A peer that never answers the disconnect must not keep the socket around.
    setTimeout(() => this.client.destroy(), 2000).unref();
  }

  destroy(reason: string): void {
    if (this.closed) return;
    this.closeError ??= new Error(reason);
    this.client.destroy();
    this.markClosed();
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.slots.rejectAll(this.lostError());
    for (const l of this.listeners) l(this.closeError);
    this.listeners.clear();
  }

  private lostError(): TargetError {
    return new TargetError(
      'connection_lost',
      `SSH connection lost${this.closeError ? ': ' + this.closeError.message : ''}`,
    );
  }
}
