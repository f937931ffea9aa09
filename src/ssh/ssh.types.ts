import type { Client, ClientChannel } from 'ssh2';

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
  /** Pinned `SHA256:…` fingerprint, or null under trust-on-first-use before first contact. */
  hostKeyFingerprint: string | null;
  /** Pinned key type (`ssh-ed25519`, …) when known. */
  hostKeyType: string | null;
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

export interface PooledConnection {
  readonly id: number;
  readonly client: Client;
  readonly hostKey: SeenHostKey;
  readonly connectMs: number;
  /** True once the underlying SSH connection is gone. */
  readonly closed: boolean;
  /** Opens one exec channel; rejects with TargetError('connection_lost') when the connection is gone. */
  exec(command: string): Promise<ClientChannel>;
  /** Registers a listener for the connection going away; returns an unsubscribe function. */
  onClose(listener: (err?: Error) => void): () => void;
}

/** One channel slot on a pooled connection, held for the duration of one target's work. */
export interface SshLease {
  readonly connection: PooledConnection;
  /** Whether this lease opened a fresh connection (cold) or reused one (warm). */
  readonly reused: boolean;
  release(): void;
}
