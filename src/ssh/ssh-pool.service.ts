import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { Client, ClientChannel } from 'ssh2';
import { retry } from '../common/backoff';
import { Semaphore, withLimit } from '../common/semaphore';
import { AppConfig } from '../config/app-config';
import { TargetError } from '../executions/error-codes';
import { MetricsService } from '../metrics/metrics.service';
import { CircuitBreaker } from './circuit-breaker';
import { Connection } from './pooled-connection';
import { classifySshError, JumpHopError } from './ssh-errors';
import { HostKeyLearner, SeenHostKey, SshEndpoint, SshLease } from './ssh.types';

interface Group {
  connections: Connection[];
  connecting: Promise<Connection> | null;
  serverIds: Set<string>;
  /** No extra connection is tried before this (one just failed). */
  noExtraUntil: number;
}

/** How long a failed extra connection keeps a group to the connections it has. */
const EXTRA_COOLDOWN_MS = 30_000;

/** Waits for `p` unless `signal` aborts first (p itself carries on). */
function raceAbort<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** No channel in use and no server tunnelled through it. */
const idle = (c: Connection) => c.busy === 0 && c.tunnels === 0;

/** Where an endpoint is, for pacing and the circuit breaker: behind a jump, as seen from it. */
function addressOf(ep: SshEndpoint): string {
  const own = `${ep.host}:${ep.port}`;
  return ep.jump ? `${own} via ${addressOf(ep.jump)}` : own;
}

const fingerprintOf = (blob: Buffer) =>
  'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');

/** The pinned key's type → algorithms to offer; an RSA key signs with SHA-2 on modern sshd. */
function hostKeyAlgorithms(type: string): string[] {
  return type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type];
}

function keyTypeOf(blob: Buffer): string {
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString('latin1');
}

/**
 * Pooled ssh2 connections, one group per (host, port, user, credentials). Each connection
 * carries at most `maxChannelsPerConnection` channels (below sshd's MaxSessions); callers
 * wait for a slot. Connects retry with backoff behind a per-host circuit breaker.
 */
@Injectable()
export class SshPool implements OnApplicationShutdown {
  private readonly logger = new Logger(SshPool.name);
  private readonly groups = new Map<string, Group>();
  private readonly breakers = new Map<string, CircuitBreaker>();
  private readonly handshakes = new Map<string, Semaphore>();
  private readonly idleTimer: NodeJS.Timeout;
  private learner: HostKeyLearner = async () => false;
  private shuttingDown = false;

  constructor(
    private readonly config: AppConfig,
    private readonly metrics: MetricsService,
  ) {
    const idle = config.ssh.idleTimeoutMs;
    this.idleTimer = setInterval(() => this.evictIdle(), Math.max(1000, Math.min(idle, 30000)));
    this.idleTimer.unref();
  }

  /** The servers module decides whether an unpinned server's first key is accepted. */
  setHostKeyLearner(learner: HostKeyLearner): void {
    this.learner = learner;
  }

  async acquire(ep: SshEndpoint, signal?: AbortSignal): Promise<SshLease> {
    if (this.shuttingDown) throw new TargetError('connect_failed', 'the service is shutting down');
    const group = this.groupOf(ep);
    for (;;) {
      signal?.throwIfAborted();
      this.dropStale(group, ep);
      const free = group.connections.find((c) => c.slots.tryAcquire());
      if (free) return this.lease(free);
      if (group.connecting) {
        // Share the attempt in flight, including its failure: one handshake per group.
        // Only this caller's own signal stops its wait; the attempt goes on for the rest.
        // An extra connection that fails only means waiting on the ones there are.
        const extra = group.connections.length > 0;
        await raceAbort(group.connecting, signal).catch((e) => {
          if (!extra || signal?.aborted) throw e;
        });
        continue;
      }
      if (group.connections.length === 0) {
        const conn = await raceAbort(this.connectInto(group, ep), signal);
        if (conn.slots.tryAcquire()) return this.lease(conn);
        continue;
      }
      // All slots busy: below the per-server cap, one more connection (paced like any
      // handshake); a failure there only means waiting for a slot on the ones there are.
      if (
        group.connections.length < this.config.ssh.maxConnectionsPerServer &&
        Date.now() >= group.noExtraUntil
      ) {
        const more = await raceAbort(this.connectInto(group, ep), signal).catch((e) => {
          if (signal?.aborted) throw e;
          group.noExtraUntil = Date.now() + EXTRA_COOLDOWN_MS;
          this.logger.warn(`an extra connection to ${ep.serverName} failed: ${e?.message}`);
          return null;
        });
        if (more?.slots.tryAcquire()) return this.lease(more);
        if (more) continue;
      }
      // Wait for the least busy connection.
      const target = group.connections.reduce((a, b) =>
        a.slots.waiting <= b.slots.waiting ? a : b,
      );
      try {
        await target.slots.acquire(signal);
      } catch (e) {
        // The connection we queued on went away: queue again on a live (or new) one.
        if (target.closed && !signal?.aborted) continue;
        throw e;
      }
      if (target.closed) {
        target.slots.release();
        continue;
      }
      return this.lease(target);
    }
  }

  /**
   * Closes pooled connections used for a server (its record changed or was removed),
   * including those tunnelled through it as a jump host.
   */
  evictServer(serverId: string): void {
    for (const group of this.groups.values()) {
      if (!group.serverIds.has(serverId)) continue;
      for (const c of group.connections) if (idle(c)) this.drop(group, c);
      group.serverIds.delete(serverId);
    }
  }

  /** Number of live pooled connections. */
  get size(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.connections.filter((c) => !c.closed).length;
    return n;
  }

  async onApplicationShutdown(): Promise<void> {
    this.shuttingDown = true;
    clearInterval(this.idleTimer);
    for (const g of this.groups.values()) for (const c of g.connections) c.close();
    this.groups.clear();
  }

  /** The group of an endpoint; it answers for the endpoint's server and its jump hosts. */
  private groupOf(ep: SshEndpoint): Group {
    const key = this.keyOf(ep);
    let group = this.groups.get(key);
    if (!group) {
      group = { connections: [], connecting: null, serverIds: new Set(), noExtraUntil: 0 };
      this.groups.set(key, group);
    }
    group.serverIds.add(ep.serverId);
    for (let j = ep.jump; j; j = j.jump) group.serverIds.add(j.serverId);
    return group;
  }

  /** A pin that changed since a connection was made invalidates it; closed ones go. */
  private dropStale(group: Group, ep: SshEndpoint): void {
    for (const c of group.connections) {
      if (ep.hostKeyFingerprint && c.hostKey.fingerprint !== ep.hostKeyFingerprint) {
        this.drop(group, c);
      }
    }
    group.connections = group.connections.filter((c) => !c.closed);
  }

  /**
   * A connection to a jump host, to tunnel through: the pooled one with the fewest tunnels
   * (shared with the jump host's own jobs and every server behind it), else a new one,
   * opened like any other (paced handshakes, retries, circuit breaker). Tunnels are
   * direct-tcpip channels, which sshd does not count against MaxSessions: they take no
   * channel slot, but keep the connection from being closed as idle.
   */
  private async jumpConnection(jump: SshEndpoint): Promise<Connection> {
    const group = this.groupOf(jump);
    for (;;) {
      this.dropStale(group, jump);
      if (group.connections.length) {
        return group.connections.reduce((a, b) => (a.tunnels <= b.tunnels ? a : b));
      }
      if (group.connecting) {
        await group.connecting;
        continue;
      }
      const conn = await this.connectInto(group, jump);
      this.metrics.sshJumpConnections.inc();
      return conn;
    }
  }

  /**
   * The socket to `ep` through its jump host (`ep.jump`): a forwardOut channel. Failing to
   * reach the jump host is the jump host's failure (JumpHopError, naming it); the jump host
   * failing to reach `ep` is `ep`'s (it counts against `ep` and is retried like a connect).
   */
  private async tunnelTo(ep: SshEndpoint): Promise<ClientChannel> {
    const jump = ep.jump!;
    let via: Connection;
    try {
      via = await this.jumpConnection(jump);
    } catch (e) {
      this.metrics.sshJumpTunnels.inc({ result: 'failed' });
      const err = e instanceof TargetError ? e : classifySshError(e, null);
      // Already named (a hop further out): keep that name.
      if (err instanceof JumpHopError) throw err;
      throw new JumpHopError(
        err,
        `${jump.serverName} (${jump.host}:${jump.port}, in front of ${ep.serverName})`,
      );
    }
    return via
      .forwardOut(ep.host, ep.port, jump.serverName, () => this.countTunnels())
      .catch((e) => {
        this.metrics.sshJumpTunnels.inc({ result: 'failed' });
        throw e;
      });
  }

  private countTunnels(): void {
    let n = 0;
    let carrying = 0;
    for (const g of this.groups.values()) {
      for (const c of g.connections) {
        n += c.tunnels;
        if (c.tunnels > 0) carrying++;
      }
    }
    this.metrics.sshTunnelsOpen.set(n);
    this.metrics.sshJumpConnectionsActive.set(carrying);
  }

  private lease(conn: Connection): SshLease {
    let released = false;
    conn.lastUsed = Date.now();
    this.metrics.sshChannels.inc();
    return {
      connection: conn,
      release: () => {
        if (released) return;
        released = true;
        conn.lastUsed = Date.now();
        this.metrics.sshChannels.dec();
        conn.slots.release();
      },
    };
  }

  private async connectInto(group: Group, ep: SshEndpoint) {
    const attempt = this.connectWithRetry(ep);
    group.connecting = attempt;
    try {
      const conn = await attempt;
      group.connections.push(conn);
      this.metrics.sshConnections.set(this.size);
      conn.onClose(() => {
        group.connections = group.connections.filter((c) => c !== conn);
        this.metrics.sshConnections.set(this.size);
      });
      return conn;
    } finally {
      if (group.connecting === attempt) group.connecting = null;
    }
  }

  /**
   * sshd drops unauthenticated connections beyond MaxStartups (default 10:30:100), so
   * handshakes to one host are paced: at most `maxConcurrentHandshakes` at a time.
   */
  private handshakesFor(ep: SshEndpoint): Semaphore {
    const k = addressOf(ep);
    let s = this.handshakes.get(k);
    if (!s) {
      s = new Semaphore(this.config.ssh.maxConcurrentHandshakes);
      this.handshakes.set(k, s);
    }
    return s;
  }

  private breakerFor(ep: SshEndpoint): CircuitBreaker {
    const k = addressOf(ep);
    let b = this.breakers.get(k);
    if (!b) {
      b = new CircuitBreaker(this.config.ssh.breaker);
      this.breakers.set(k, b);
    }
    return b;
  }

  private async connectWithRetry(ep: SshEndpoint): Promise<Connection> {
    const breaker = this.breakerFor(ep);
    if (!breaker.tryPass()) {
      throw new TargetError(
        'connect_failed',
        `circuit open for ${ep.host}:${ep.port} after repeated connect failures; ` +
          `next attempt in ${Math.ceil(breaker.blockedForMs() / 1000)} s`,
      );
    }
    try {
      const conn = await retry(
        this.config.ssh.connectRetry,
        () => withLimit(this.handshakesFor(ep), () => this.connectOnce(ep)),
        (e) => e instanceof TargetError && e.retryable,
      );
      breaker.success();
      return conn;
    } catch (e) {
      const err = e instanceof TargetError ? e : classifySshError(e, null);
      // Only reachability problems count against the host; a bad key is not the host's fault,
      // nor is a jump host in front of it that failed.
      if (err.code === 'connect_failed' && !(err instanceof JumpHopError)) {
        if (breaker.failure()) this.metrics.breakerOpens.inc();
      } else breaker.success();
      this.metrics.sshConnectFailures.inc({ code: err.code });
      throw err;
    }
  }

  private async connectOnce(ep: SshEndpoint): Promise<Connection> {
    const started = performance.now();
    const sock = ep.jump ? await this.tunnelTo(ep) : undefined;
    if (sock) this.metrics.sshJumpTunnels.inc({ result: 'opened' });
    return new Promise<Connection>((resolve, reject) => {
      const client = new Client();
      let seen: SeenHostKey | null = null;
      let mismatch: string | null = null;
      let settled = false;
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        client.destroy();
        sock?.destroy();
        reject(classifySshError(err, mismatch));
      };

      client.on('error', fail);
      client.on('close', () => fail(new Error('Connection lost before handshake')));
      client.on('ready', () => {
        if (settled) return;
        void this.acceptHostKey(ep, seen!).then(
          (ok) => {
            if (!ok) {
              mismatch = `host key ${seen!.fingerprint} was refused: another key is pinned for ${ep.serverName}`;
              return fail(new Error(mismatch));
            }
            settled = true;
            client.removeListener('error', fail);
            client.on('error', (e: Error) => this.logger.debug(`ssh ${ep.host}: ${e.message}`));
            resolve(
              new Connection(
                this.keyOf(ep),
                client,
                seen!,
                Math.round(performance.now() - started),
                this.config.ssh.maxChannelsPerConnection,
              ),
            );
          },
          (e) => fail(e),
        );
      });
      try {
        client.connect({
          host: ep.host,
          port: ep.port,
          sock,
          username: ep.username,
          privateKey: ep.privateKey,
          passphrase: ep.passphrase,
          password: ep.password,
          readyTimeout: this.config.ssh.readyTimeoutMs,
          keepaliveInterval: this.config.ssh.keepaliveIntervalMs,
          keepaliveCountMax: this.config.ssh.keepaliveCountMax,
          tryKeyboard: false,
          algorithms: ep.hostKeyType
            ? { serverHostKey: hostKeyAlgorithms(ep.hostKeyType) as any }
            : undefined,
          hostVerifier: (blob: Buffer) => {
            seen = { fingerprint: fingerprintOf(blob), type: keyTypeOf(blob) };
            if (ep.hostKeyFingerprint && ep.hostKeyFingerprint !== seen.fingerprint) {
              mismatch =
                `host key mismatch for ${ep.serverName}: expected ${ep.hostKeyFingerprint}, ` +
                `got ${seen.fingerprint}`;
              return false;
            }
            return true;
          },
        });
        // Small request/response packets: do not let Nagle hold them back.
        client.setNoDelay(true);
      } catch (e) {
        fail(e);
      }
    });
  }

  private async acceptHostKey(ep: SshEndpoint, seen: SeenHostKey): Promise<boolean> {
    if (ep.hostKeyFingerprint) return ep.hostKeyFingerprint === seen.fingerprint;
    return this.learner(ep.serverId, seen, ep);
  }

  private keyOf(ep: SshEndpoint): string {
    const cred = createHash('sha256')
      .update(JSON.stringify([ep.privateKey ?? '', ep.passphrase ?? '', ep.password ?? '']))
      .digest('hex')
      .slice(0, 24);
    const own = `${ep.username}@${ep.host}:${ep.port}#${cred}`;
    // Behind a jump host, the address is the jump host's view: another place entirely.
    return ep.jump ? `${own} via ${this.keyOf(ep.jump)}` : own;
  }

  private drop(group: Group, c: Connection): void {
    group.connections = group.connections.filter((x) => x !== c);
    c.close();
  }

  private evictIdle(): void {
    const cutoff = Date.now() - this.config.ssh.idleTimeoutMs;
    for (const g of this.groups.values()) {
      for (const c of g.connections) if (idle(c) && c.lastUsed < cutoff) this.drop(g, c);
    }
    this.metrics.sshConnections.set(this.size);
  }
}
