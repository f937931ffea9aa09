import type { Duplex } from 'node:stream';
import type { ClientChannel } from 'ssh2';

/** Everything the pool needs to reach one server; credentials already decrypted. */
export interface SshEndpoint {
  serverId: string;
  serverName: string;
  host: string;
  port: number;
  username: string;
  privateKey?: string;
  passphrase?: string;
  password?: string;
  /** The server's sudo password for a job's `become` (never used to log in). */
  becomePassword?: string;
  /** Pinned `SHA256:…` fingerprint, or null under trust-on-first-use before first contact. */
  hostKeyFingerprint: string | null;
  /** Pinned key type (`ssh-ed25519`, …) when known. */
  hostKeyType: string | null;
  /**
   * The jump host this server is reached through (ProxyJump), itself maybe behind another;
   * `host:port` above is then the address as the jump host sees it.
   */
  jump?: SshEndpoint;
}

/** Host key seen during a handshake. */
export interface SeenHostKey {
  fingerprint: string;
  type: string;
}

/** Called when a connection to an unpinned server succeeds; returns false to refuse the key. */
export type HostKeyLearner = (
  serverId: string,
  seen: SeenHostKey,
  endpoint: SshEndpoint,
) => Promise<boolean>;

/**
 * A remote forward's incoming connection, as sshd reports it: a TCP one names its
 * destination address and port, a Unix-socket one (`socketPath` set) only its path.
 */
export interface ForwardedConnection {
  destIP: string;
  destPort: number;
  srcIP: string;
  srcPort: number;
  socketPath?: string;
}

/** Accepts an incoming forwarded connection (returns its stream) or refuses it. */
export type ForwardedConnectionHandler = (
  info: ForwardedConnection,
  accept: () => Duplex,
  reject: () => void,
) => void;

export interface PooledConnection {
  readonly id: number;
  readonly hostKey: SeenHostKey;
  readonly connectMs: number;
  /** True once the underlying SSH connection is gone. */
  readonly closed: boolean;
  /**
   * Opens one exec channel; rejects with TargetError('connection_lost') when the
   * connection is gone. `wire` runs as the channel opens, before any of its events.
   */
  exec(command: string, wire?: (channel: ClientChannel) => void): Promise<ClientChannel>;
  /** Registers a listener for the connection going away; returns an unsubscribe function. */
  onClose(listener: (err?: Error) => void): () => void;
  /** Asks sshd to listen on the remote `address:port` (0: sshd picks); resolves the port. */
  forwardIn(address: string, port: number): Promise<number>;
  /** Stops a remote listener opened by forwardIn. */
  unforwardIn(address: string, port: number): Promise<void>;
  /**
   * Asks sshd to listen on a Unix socket at the absolute remote `path` (OpenSSH's
   * streamlocal forwarding); sshd creates it with its StreamLocalBindMask (0600 by default).
   */
  forwardInSocket(path: string): Promise<void>;
  /** Stops a remote Unix-socket listener opened by forwardInSocket. */
  unforwardInSocket(path: string): Promise<void>;
  /** Receives every incoming connection on this connection's remote forwards (TCP and Unix). */
  onForwardedConnection(handler: ForwardedConnectionHandler): void;
  /**
   * Drops the connection at once, without waiting for the peer (a host that stopped
   * answering): it counts as closed right away, every channel on it ends, and the pool
   * opens a fresh one for the next caller.
   */
  destroy(reason: string): void;
}

/** One channel slot on a pooled connection, held for the duration of one target's work. */
export interface SshLease {
  readonly connection: PooledConnection;
  release(): void;
}
