import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { retry } from '../common/backoff';
import { AppConfig } from '../config/app-config';
import { TargetError } from '../executions/error-codes';
import { MetricsService } from '../metrics/metrics.service';
import { RunnerCacheEntity } from '../persistence/entities';
import { RunnerCacheRepository } from '../persistence/runner-cache.repository';
import { execCommand } from '../ssh/run-command';
import { PooledConnection } from '../ssh/ssh.types';
import { deployCommand, verifyCommand } from '../runner/commands';
import { isToolMissing, isUnsafePath, parseErrorLine } from '../runner/protocol';
import { buildRunnerArtifact, RunnerArtifact } from './runner-artifact';

export interface EnsureResult {
  /** hit: trusted cache entry, no remote work; verified: re-checked by hash; deployed: uploaded. */
  outcome: 'hit' | 'verified' | 'deployed';
}

/**
 * Keeps the runner deployed once per (server, artifact hash). Entries are persisted and
 * trusted for `runner.trustSeconds`, then re-verified by hash; concurrent deployments to
 * one server share a single attempt.
 */
@Injectable()
export class RunnerCacheService implements OnModuleInit {
  private readonly logger = new Logger(RunnerCacheService.name);
  private artifactValue: RunnerArtifact | null = null;
  private readonly memo = new Map<string, RunnerCacheEntity>();
  private readonly inflight = new Map<string, Promise<EnsureResult>>();

  constructor(
    private readonly config: AppConfig,
    private readonly metrics: MetricsService,
    private readonly repo: RunnerCacheRepository,
  ) {}

  onModuleInit(): void {
    this.artifactValue = buildRunnerArtifact();
    this.logger.log(`runner ${this.artifact.version} artifact sha256 ${this.artifact.hash}`);
  }

  get artifact(): RunnerArtifact {
    if (!this.artifactValue) this.artifactValue = buildRunnerArtifact();
    return this.artifactValue;
  }

  async ensure(conn: PooledConnection, serverId: string, baseDir: string): Promise<EnsureResult> {
    const key = `${serverId}|${baseDir}`;
    const entry = await this.lookup(serverId, baseDir);
    if (entry && Date.now() - entry.verifiedAt < this.config.runner.trustSeconds * 1000) {
      this.metrics.runnerCache.inc({ result: 'hit' });
      return { outcome: 'hit' };
    }
    const running = this.inflight.get(key);
    if (running) return running;
    const attempt = (async (): Promise<EnsureResult> => {
      if (entry) {
        this.metrics.runnerCache.inc({ result: 'stale' });
        const ok = await execCommand(conn, verifyCommand(baseDir, this.artifact.hash)).then(
          (r) => r.code === 0,
          () => false,
        );
        if (ok) {
          await this.remember(serverId, baseDir, entry.deployedAt);
          return { outcome: 'verified' };
        }
      } else {
        this.metrics.runnerCache.inc({ result: 'miss' });
      }
      await this.deploy(conn, baseDir);
      await this.remember(serverId, baseDir, Date.now());
      return { outcome: 'deployed' };
    })();
    this.inflight.set(key, attempt);
    try {
      return await attempt;
    } finally {
      this.inflight.delete(key);
    }
  }

  /** True when ensure() would be a cache hit with no remote work (checked in memory only). */
  isTrusted(serverId: string, baseDir: string): boolean {
    const e = this.memo.get(`${serverId}|${baseDir}`);
    return !!e && Date.now() - e.verifiedAt < this.config.runner.trustSeconds * 1000;
  }

  /** The runner was found missing on the server: forget it so the next ensure redeploys. */
  async invalidate(serverId: string): Promise<void> {
    await this.forget(serverId);
    this.metrics.runnerCache.inc({ result: 'vanished' });
  }

  /** Drops what is known about a server (it was edited or deleted). */
  async forget(serverId: string): Promise<void> {
    for (const k of [...this.memo.keys()]) if (k.startsWith(serverId + '|')) this.memo.delete(k);
    await this.repo.deleteServer(serverId);
  }

  private async deploy(conn: PooledConnection, baseDir: string): Promise<void> {
    const { hash, tar } = this.artifact;
    try {
      await retry(
        this.config.runner.deployRetry,
        async () => {
          const r = await execCommand(conn, deployCommand(baseDir, hash), { stdin: tar });
          if (r.code !== 0) {
            const error = parseErrorLine(r.stdout);
            if (isUnsafePath(error)) throw unsafeBaseDir(error!);
            if (isToolMissing(error))
              throw new TargetError('deploy_failed', `runner deployment refused: ${error}`);
            const why = (error ?? r.stderr.trim()) || `exit ${r.code}`;
            throw new TargetError('deploy_failed', `runner deployment failed: ${why}`, true);
          }
        },
        (e) => !conn.closed && (!(e instanceof TargetError) || e.retryable),
      );
      this.metrics.runnerDeployments.inc({ result: 'success' });
    } catch (e: any) {
      this.metrics.runnerDeployments.inc({ result: 'failure' });
      if (conn.closed)
        throw new TargetError('connection_lost', 'connection lost while deploying the runner');
      throw e instanceof TargetError
        ? e
        : new TargetError('deploy_failed', `runner deployment failed: ${e?.message}`);
    }
  }

  private async lookup(serverId: string, baseDir: string): Promise<RunnerCacheEntity | null> {
    const key = `${serverId}|${baseDir}`;
    const hit = this.memo.get(key);
    if (hit) return hit;
    const row = await this.repo.find(serverId, this.artifact.hash);
    if (!row || row.baseDir !== baseDir) return null;
    this.memo.set(key, row);
    return row;
  }

  private async remember(serverId: string, baseDir: string, deployedAt: number): Promise<void> {
    const row: RunnerCacheEntity = {
      serverId,
      runnerHash: this.artifact.hash,
      baseDir,
      deployedAt,
      verifiedAt: Date.now(),
    };
    await this.repo.save(row);
    this.memo.set(`${serverId}|${baseDir}`, row);
  }
}

/**
 * The base dir (or a path of ours under it) is another user's or writable by others: they
 * could swap the runner and read the next job's stdin. Refused, never retried.
 */
export function unsafeBaseDir(runnerError: string): TargetError {
  return new TargetError(
    'deploy_failed',
    `refusing the server's base directory: ${runnerError}; it must be owned by the SSH user and not writable by group or others`,
  );
}
