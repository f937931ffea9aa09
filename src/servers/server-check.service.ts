import { Injectable } from '@nestjs/common';
import { isTargetError, TargetError } from '../executions/error-codes';
import { AppConfig } from '../config/app-config';
import { execCommand } from '../ssh/run-command';
import { SshPool } from '../ssh/ssh-pool.service';
import { SshEndpoint, SshLease } from '../ssh/ssh.types';
import { ServerCheckResult } from './dto/server-view.dto';
import { ServersService } from './servers.service';

/**
 * `POST /v1/servers/:id/check`: connects (through the pool, so host-key pinning applies),
 * runs `true` and reports the host key and timings. Connection problems are a 200 with
 * `{ok: false, error: {code, message}}`; an unknown server is a 404.
 */
@Injectable()
export class ServerCheckService {
  constructor(
    private readonly servers: ServersService,
    private readonly pool: SshPool,
    private readonly config: AppConfig,
  ) {}

  /**
   * Answers within `timeoutSeconds` whatever the host does (a port that accepts and
   * never speaks would otherwise cost every connect retry's handshake timeout).
   */
  async check(id: string, timeoutSeconds = 10): Promise<ServerCheckResult> {
    const endpoint = await this.servers.getEndpoint(id).catch((e) => {
      if (isTargetError(e)) return e; // e.g. credentials that cannot be decrypted
      throw e;
    });
    if (endpoint instanceof TargetError) return failure(endpoint);
    const abort = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<ServerCheckResult>((resolve) => {
      timer = setTimeout(() => {
        abort.abort();
        resolve(failure(new TargetError('connect_failed', `no answer within ${timeoutSeconds} s`)));
      }, timeoutSeconds * 1000);
    });
    try {
      return await Promise.race([this.attempt(endpoint, abort.signal), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async attempt(endpoint: SshEndpoint, signal: AbortSignal): Promise<ServerCheckResult> {
    let lease: SshLease | undefined;
    try {
      lease = await this.pool.acquire(endpoint, signal);
      if (signal.aborted) return failure(new TargetError('connect_failed', 'timed out'));
      const conn = lease.connection;
      const seen = conn.hostKey;
      const started = performance.now();
      const timeoutMs = this.config.ssh.readyTimeoutMs;
      const { code: exitCode } = await execCommand(conn, 'true', {
        timeoutMs,
        timeoutError: () =>
          new TargetError(
            'connect_failed',
            `no answer to \`true\` within ${Math.round(timeoutMs / 1000)} s`,
          ),
      });
      const latencyMs = round(performance.now() - started);
      if (exitCode !== 0) {
        return failure(
          new TargetError(
            'runner_error',
            `\`true\` exited with ${exitCode === null ? 'no exit code' : `code ${exitCode}`} ` +
              `on ${endpoint.serverName} (is the login shell usable?)`,
          ),
        );
      }

      const server = await this.servers.getEntity(endpoint.serverId);
      let pinned = server.hostKeyFingerprint === seen.fingerprint;
      if (!pinned && server.hostKeyFingerprint === null) {
        // A pooled connection made before the pin was cleared: trust on first use now.
        pinned = await this.servers.learnHostKey(server.id, seen, endpoint);
      }
      return {
        ok: true,
        fingerprint: seen.fingerprint,
        hostKeyType: seen.type,
        pinned,
        connectMs: conn.connectMs,
        latencyMs,
      };
    } catch (e) {
      if (isTargetError(e)) return failure(e);
      throw e;
    } finally {
      lease?.release();
    }
  }
}

function failure(e: TargetError): ServerCheckResult {
  return { ok: false, error: { code: e.code, message: e.message } };
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
