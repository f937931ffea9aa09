import { Injectable, Logger } from '@nestjs/common';
import type { Duplex } from 'node:stream';
import { ExecutionTokensService } from '../auth/execution-tokens.service';
import { AppConfig } from '../config/app-config';
import { TargetError } from '../executions/error-codes';
import type { HelperMode, ResolvedHelperMode, ScriptType } from '../executions/request';
import { MetricsService } from '../metrics/metrics.service';
import { ExecutionsRepository } from '../persistence/executions.repository';
import type { PooledConnection } from '../ssh/ssh.types';
import { Tunnel, TunnelService } from '../tunnel/tunnel.service';
import { HELPER_SOCKET_RE, removeSocketCommand, runsDirCommand } from '../runner/commands';
import { execCommand } from '../ssh/run-command';
import { parseCollected } from '../runner/protocol';
import { bundledFiles, readBundledResults } from './bundled-files';
import { RuntimeApiServer } from './runtime-api.server';
import { RuntimeContext, RuntimeSessionsService } from './runtime-sessions.service';
import { DEFAULT_SCOPE, VariablesService } from './variables.service';

/** The longest a refused tunnel is remembered before it is asked for again. */
const TUNNEL_RETRY_MAX_MS = 10 * 60_000;

export interface HelperRequest {
  targetId: string;
  serverId: string;
  serverName: string;
  executionId: string;
  jobId: string | null;
  eventId: string | null;
  userId: string | null;
  input: unknown;
  timeoutSeconds: number;
  mode: HelperMode;
  /** python and node helpers reach the API through a Unix socket where sshd allows one. */
  scriptType: ScriptType;
  /** The server's base dir, whose runs directory holds that socket. */
  baseDir: string;
}

export interface HelperResults {
  output: unknown;
  condition: boolean | null;
  /** Bundled mode: records that were refused (and why); the others were applied. */
  refused?: string[];
}

/** What a take-over needs to serve an API-mode script started by another process. */
export interface ApiResume {
  /** The server-side port the script's endpoint names. */
  port: number;
  /** The remote Unix socket the script's endpoint names, if it has one. */
  socketPath: string | null;
  /** What the script had handed its helpers so far (stored as it did). */
  results: HelperResults;
}

/** Helpers set up for one target: env and files for the runner, and how to finish. */
export interface PreparedHelpers {
  mode: ResolvedHelperMode;
  fallbackReason: string | null;
  /** The API endpoint as the script sees it (API mode), for the log; never the token. */
  endpoint: string | null;
  /** API mode: the tunnel's server-side port (stored, so a take-over can forward it again). */
  port: number | null;
  /** API mode, python and node: the remote Unix socket their helpers use, besides the port. */
  socketPath: string | null;
  env: Record<string, string>;
  files: Record<string, string>;
  /** Bundled mode keeps the run directory for one `collect`. */
  keep: boolean;
  tunnelMs: number | null;
  /**
   * After a re-attach on a new connection: forwards the same remote port again, so the
   * script's endpoint keeps working. False when that port could not be had back.
   */
  reconnect(conn: PooledConnection): Promise<boolean>;
  /** Ends the session: closes the tunnel, invalidates the token, returns API-mode results. */
  release(): Promise<HelperResults>;
}

/**
 * Gives a running script its callback API: a per-target reverse tunnel and execution JWT
 * (API mode), or snapshot files in the run directory (bundled mode); `auto` tries the
 * former and falls back to the latter, recording why.
 */
@Injectable()
export class RuntimeHelpersService {
  private readonly logger = new Logger(RuntimeHelpersService.name);
  /** Per connection and base dir: the absolute runs directory, or null (no sockets there). */
  private readonly runsDirs = new WeakMap<PooledConnection, Map<string, Promise<string | null>>>();
  /** Connections whose sshd refused a Unix-socket forward: TCP from then on. */
  private readonly noSockets = new WeakSet<PooledConnection>();
  /**
   * Connections whose sshd refused the tunnel (AllowTcpForwarding no): `auto` goes
   * straight to bundled mode on them until `retryAt` (back-off doubling up to
   * TUNNEL_RETRY_MAX_MS), instead of asking again on every job.
   */
  private readonly refused = new WeakMap<
    PooledConnection,
    { reason: string; retryAt: number; backoffMs: number }
  >();

  constructor(
    private readonly config: AppConfig,
    private readonly tokens: ExecutionTokensService,
    private readonly sessions: RuntimeSessionsService,
    private readonly api: RuntimeApiServer,
    private readonly tunnels: TunnelService,
    private readonly variables: VariablesService,
    private readonly metrics: MetricsService,
    private readonly executions: ExecutionsRepository,
  ) {}

  /**
   * A take-over of an API-mode target: the same remote port is forwarded again on this
   * process's connection and the session re-opened with what the script had set, so the
   * endpoint and token the script holds (signed with the shared JWT secret) keep working.
   */
  async resumeApi(
    conn: PooledConnection,
    req: HelperRequest,
    resume: ApiResume,
  ): Promise<PreparedHelpers> {
    const prepared = await this.prepareApi(conn, req, this.contextOf(req, 'api'), resume);
    this.metrics.tunnels.inc({ result: 'api', reason: 'none' });
    return prepared;
  }

  private contextOf(req: HelperRequest, helperMode: ResolvedHelperMode): RuntimeContext {
    return {
      executionId: req.executionId,
      jobId: req.jobId ?? req.executionId,
      eventId: req.eventId,
      userId: req.userId ?? DEFAULT_SCOPE,
      serverId: req.serverId,
      serverName: req.serverName,
      helperMode,
    };
  }

  async prepare(conn: PooledConnection, req: HelperRequest): Promise<PreparedHelpers> {
    const context = this.contextOf(req, 'api');
    let fallbackReason: string | null = null;
    const refused = this.refused.get(conn);
    if (req.mode === 'auto' && refused && Date.now() < refused.retryAt) {
      this.metrics.tunnels.inc({ result: 'fallback', reason: 'tunnel' });
      return this.prepareBundled(
        req,
        { ...context, helperMode: 'bundled' },
        `${refused.reason} (refused earlier on this connection; asked again after ${Math.round(refused.backoffMs / 1000)} s)`,
      );
    }
    if (req.mode !== 'bundled') {
      const started = performance.now();
      try {
        const prepared = await this.prepareApi(conn, req, context);
        this.refused.delete(conn);
        prepared.tunnelMs = Math.round(performance.now() - started);
        this.metrics.tunnels.inc({ result: 'api', reason: 'none' });
        return prepared;
      } catch (e: any) {
        const reason =
          e instanceof TargetError ? e.message : `tunnel set-up failed: ${e?.message ?? e}`;
        if (req.mode === 'api' || conn.closed) {
          this.metrics.tunnels.inc({
            result: 'failed',
            reason: conn.closed ? 'connection_lost' : 'tunnel',
          });
          if (conn.closed)
            throw new TargetError('connection_lost', 'connection lost while opening the tunnel');
          throw new TargetError('tunnel_failed', reason);
        }
        fallbackReason = reason;
        const backoffMs = Math.min(TUNNEL_RETRY_MAX_MS, (refused?.backoffMs ?? 15_000) * 2);
        this.refused.set(conn, { reason, retryAt: Date.now() + backoffMs, backoffMs });
        this.metrics.tunnels.inc({ result: 'fallback', reason: 'tunnel' });
      }
    }
    return this.prepareBundled(req, { ...context, helperMode: 'bundled' }, fallbackReason);
  }

  /** Applies what a bundled-mode script wrote (the runner's `collect` answer). */
  async applyBundled(userId: string | null, collected: Buffer): Promise<HelperResults> {
    const r = readBundledResults(parseCollected(collected), this.config.limits.maxJsonDepth);
    for (const [key, value] of r.variables) {
      await this.variables.set(userId ?? DEFAULT_SCOPE, key, value);
    }
    return {
      output: r.output.set ? r.output.value : null,
      condition: r.condition,
      refused: r.refused,
    };
  }

  private async prepareApi(
    conn: PooledConnection,
    req: HelperRequest,
    context: RuntimeContext,
    resume?: ApiResume,
  ) {
    const serve = (stream: Duplex) => this.api.serve(stream, req.targetId);
    let tunnels = await this.openTunnels(conn, req, serve, resume);
    const port = tunnels[0].port;
    const socketPath = tunnels[1]?.socketPath ?? null;
    // A resumed script holds its token already.
    const token = resume
      ? ''
      : this.tokens.issue(
          {
            jobId: context.jobId,
            executionId: context.executionId,
            serverId: context.serverId,
            userId: context.userId,
            eventId: context.eventId,
            jti: req.targetId,
          },
          req.timeoutSeconds,
        );
    const session = this.sessions.open(
      req.targetId,
      context,
      req.input ?? null,
      this.config.runtime.burst,
    );
    if (resume) {
      session.output =
        resume.results.output == null
          ? { set: false, value: null }
          : { set: true, value: resume.results.output };
      session.condition = resume.results.condition;
    }
    // Stored as the script sets them, so whoever takes the target over still has them.
    session.onChange = () =>
      void this.executions
        .updateTarget(req.targetId, {
          output: session.output.set ? session.output.value : null,
          condition: session.condition,
        })
        .catch((e) => this.logger.warn(`storing helper results of ${req.targetId}: ${e?.message}`));
    const endpoint = `http://127.0.0.1:${port}`;
    let released = false;
    const prepared: PreparedHelpers = {
      mode: 'api',
      fallbackReason: null,
      endpoint,
      port,
      socketPath,
      env: resume
        ? {}
        : {
            CRONIUM_HELPER_MODE: 'api',
            CRONIUM_API_ENDPOINT: endpoint,
            CRONIUM_API_TOKEN: token,
            ...(socketPath ? { CRONIUM_API_SOCKET: socketPath } : {}),
          },
      files: {},
      keep: false,
      tunnelMs: null,
      reconnect: async (next) => {
        if (released) return true;
        try {
          tunnels = await this.reopen(next, tunnels, serve);
          return true;
        } catch {
          return false;
        }
      },
      release: async () => {
        if (!released) {
          released = true;
          // The session ends now (its token is refused from here on); the port itself is
          // released in the background, off the target's critical path.
          this.sessions.close(req.targetId);
          for (const t of tunnels) void t.close();
        }
        return {
          output: session.output.set ? session.output.value : null,
          condition: session.condition,
        };
      },
    };
    return prepared;
  }

  /**
   * The loopback port every script's endpoint names (bash's helpers speak through
   * /dev/tcp), and for python and node, where sshd allows streamlocal forwarding, a Unix
   * socket in the runs directory (0700; the socket 0600) that their helpers use and no
   * other local user can reach. Both are forwarded at once. A take-over forwards again
   * what the script holds.
   */
  private async openTunnels(
    conn: PooledConnection,
    req: HelperRequest,
    serve: (stream: Duplex) => void,
    resume?: ApiResume,
  ): Promise<Tunnel[]> {
    if (resume) {
      const was: Pick<Tunnel, 'port' | 'socketPath'>[] = [{ port: resume.port, socketPath: null }];
      if (resume.socketPath) was.push({ port: 0, socketPath: resume.socketPath });
      return this.reopen(conn, was, serve);
    }
    const socket = async (): Promise<Tunnel | null> => {
      const path = req.scriptType === 'bash' ? null : await this.socketPathFor(conn, req);
      if (!path) return null;
      return this.tunnels.openSocket(conn, path, serve).catch((e) => {
        if (!conn.closed) {
          this.noSockets.add(conn);
          this.logger.log(`unix-socket forwarding refused (${e?.message}); loopback port only`);
        }
        return null;
      });
    };
    const [tcp, unix] = await Promise.allSettled([
      this.tunnels.open(conn, serve, 10000, 0),
      socket(),
    ]);
    const sock = unix.status === 'fulfilled' ? unix.value : null;
    if (tcp.status === 'rejected') {
      void sock?.close();
      throw tcp.reason;
    }
    return sock ? [tcp.value, sock] : [tcp.value];
  }

  /** The same endpoints again on a new connection (a stale socket file is removed first). */
  private reopen(
    conn: PooledConnection,
    was: Pick<Tunnel, 'port' | 'socketPath'>[],
    serve: (stream: Duplex) => void,
  ): Promise<Tunnel[]> {
    return Promise.all(
      was.map(async (t) => {
        if (!t.socketPath) return this.tunnels.open(conn, serve, 10000, t.port);
        await execCommand(conn, removeSocketCommand(t.socketPath), { timeoutMs: 10000 });
        return this.tunnels.openSocket(conn, t.socketPath, serve);
      }),
    );
  }

  private async socketPathFor(conn: PooledConnection, req: HelperRequest): Promise<string | null> {
    if (this.noSockets.has(conn)) return null;
    let dirs = this.runsDirs.get(conn);
    if (!dirs) this.runsDirs.set(conn, (dirs = new Map()));
    let dir = dirs.get(req.baseDir);
    if (!dir) {
      dir = execCommand(conn, runsDirCommand(req.baseDir), { timeoutMs: 10000 }).then(
        (r) => (r.code === 0 && r.stdout.startsWith('/') ? r.stdout.trim() : null),
        () => null,
      );
      dirs.set(req.baseDir, dir);
    }
    const base = await dir;
    const path = base && `${base}/${req.targetId}.sock`;
    // sun_path holds 108 bytes: a longer path gets the loopback port instead.
    return path && Buffer.byteLength(path) <= 100 && HELPER_SOCKET_RE.test(path) ? path : null;
  }

  private async prepareBundled(
    req: HelperRequest,
    context: RuntimeContext,
    fallbackReason: string | null,
  ): Promise<PreparedHelpers> {
    const variables = await this.variables.all(context.userId);
    return {
      mode: 'bundled',
      fallbackReason,
      endpoint: null,
      port: null,
      socketPath: null,
      env: { CRONIUM_HELPER_MODE: 'bundled' },
      files: bundledFiles(context, req.input, variables),
      keep: true,
      tunnelMs: null,
      reconnect: async () => true,
      release: async () => ({ output: null, condition: null }),
    };
  }
}
