import { TargetError } from '../executions/error-codes';
import type { TargetPhases, TargetRecord } from '../executions/records';
import type { TargetStatus } from '../executions/statuses';
import { collectCommand, runCommand } from '../runner/commands';
import { OutputCapture } from '../runner/output-capture';
import type { RunnerChannels } from '../runner/runner-channels';
import { RunnerExit, RunnerSession } from '../runner/runner-session';
import type { RunnerCacheService } from '../runner-cache/runner-cache.service';
import type {
  HelperResults,
  PreparedHelpers,
  RuntimeHelpersService,
} from '../runtime-helpers/runtime-helpers.service';
import { execCommand } from '../ssh/run-command';
import type { SshPool } from '../ssh/ssh-pool.service';
import type { PooledConnection, SshLease } from '../ssh/ssh.types';
import type { ExecutionPlan, TargetPlan } from './execution-plan';

export interface TargetRunDeps {
  pool: Pick<SshPool, 'acquire'>;
  runnerCache: Pick<RunnerCacheService, 'artifact' | 'ensure' | 'isTrusted' | 'invalidate'>;
  runnerChannels: RunnerChannels;
  helpers: Pick<RuntimeHelpersService, 'prepare' | 'applyBundled'>;
  limits: {
    capBytes: number;
    maxLineBytes: number;
    killGraceSeconds: number;
    collectTimeoutMs: number;
  };
  setStatus: (status: TargetStatus, patch?: Partial<TargetRecord>) => Promise<void>;
  log: (stream: 'stdout' | 'stderr' | 'system', text: string) => void;
}

export type StopReason = 'cancelled' | 'timed_out';

export interface TargetOutcome {
  status: TargetStatus;
  exitCode: number | null;
  signal: string | null;
  error: { code: string; message: string } | null;
  truncated: boolean;
  helperMode: string | null;
  fallbackReason: string | null;
  output: unknown;
  condition: boolean | null;
  phases: TargetPhases;
  startedAt: number;
  finishedAt: number;
}

type Classified = Pick<TargetOutcome, 'status' | 'exitCode' | 'signal' | 'error'>;
type Result = Omit<TargetOutcome, 'phases' | 'startedAt' | 'finishedAt' | 'truncated'>;

/**
 * One execution on one server, as its phases: connect (pooled) → ensure the runner →
 * helpers (tunnel or bundled files) → run (one exec channel; the runner session streams
 * output and carries the control words) → classify. Timeouts and cancellation travel as
 * words to the runner, which kills the whole remote process tree.
 */
export class TargetRun {
  private readonly abort = new AbortController();
  private stopReason: StopReason | null = null;
  private session: RunnerSession | null = null;
  private truncated = false;
  private readonly phases: TargetPhases = {
    connectMs: null,
    deployMs: null,
    tunnelMs: null,
    runMs: null,
  };

  constructor(
    private readonly deps: TargetRunDeps,
    private readonly plan: ExecutionPlan,
    readonly target: TargetPlan,
  ) {}

  /** Asks the runner to kill the remote tree; idempotent. */
  stop(reason: StopReason): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.abort.abort(new TargetError(reason, reason === 'timed_out' ? 'timed out' : 'cancelled'));
    this.session?.signal(reason === 'timed_out' ? 'timeout' : 'cancel');
  }

  async run(): Promise<TargetOutcome> {
    const startedAt = Date.now();
    const timer = setTimeout(() => this.stop('timed_out'), this.plan.timeoutSeconds * 1000);
    let result: Result;
    try {
      result = await this.attempt(startedAt);
    } catch (e) {
      result = this.failure(e);
    } finally {
      clearTimeout(timer);
    }
    return {
      ...result,
      truncated: this.truncated,
      phases: this.phases,
      startedAt,
      finishedAt: Date.now(),
    };
  }

  private async attempt(startedAt: number): Promise<Result> {
    await this.deps.setStatus('connecting', { startedAt });
    const lease = await this.connect();
    try {
      const conn = lease.connection;
      await this.ensureRunner(conn);
      const helpers = await this.prepareHelpers(conn);
      try {
        await this.deps.setStatus('running', {
          helperMode: helpers.mode,
          fallbackReason: helpers.fallbackReason,
        });
        const exit = await this.runScript(conn, helpers);
        const results = await this.results(conn, helpers, exit);
        return {
          ...this.classify(exit),
          helperMode: helpers.mode,
          fallbackReason: helpers.fallbackReason,
          ...results,
        };
      } finally {
        await helpers.release();
      }
    } finally {
      lease.release();
    }
  }

  private async connect(): Promise<SshLease> {
    const t0 = performance.now();
    const endpoint = await this.target.endpoint();
    const lease = await this.deps.pool.acquire(endpoint, this.abort.signal);
    this.phases.connectMs = Math.round(performance.now() - t0);
    return lease;
  }

  private async ensureRunner(conn: PooledConnection): Promise<void> {
    this.abort.signal.throwIfAborted();
    const { runnerCache } = this.deps;
    // A trusted cached runner needs no remote work: go straight from connecting to running.
    if (!runnerCache.isTrusted(this.target.serverId, this.target.baseDir)) {
      await this.deps.setStatus('deploying');
    }
    const t = performance.now();
    const r = await runnerCache.ensure(conn, this.target.serverId, this.target.baseDir);
    this.phases.deployMs = (this.phases.deployMs ?? 0) + Math.round(performance.now() - t);
    if (r.outcome === 'deployed') {
      this.deps.log('system', `runner deployed (sha256 ${runnerCache.artifact.hash.slice(0, 12)})`);
    }
    this.abort.signal.throwIfAborted();
  }

  private async prepareHelpers(conn: PooledConnection): Promise<PreparedHelpers> {
    const { execution } = this.plan;
    const helpers = await this.deps.helpers.prepare(conn, {
      targetId: this.target.targetId,
      serverId: this.target.serverId,
      serverName: this.target.serverName,
      executionId: execution.id,
      jobId: execution.jobId,
      eventId: execution.eventId,
      userId: execution.userId,
      input: this.plan.input,
      timeoutSeconds: this.plan.timeoutSeconds,
      mode: this.plan.helperMode,
    });
    this.phases.tunnelMs = helpers.tunnelMs;
    if (helpers.fallbackReason) {
      this.deps.log('system', `helper mode bundled (fallback: ${helpers.fallbackReason})`);
    }
    return helpers;
  }

  /** Runs the script; a runner that vanished from the server is redeployed once. */
  private async runScript(conn: PooledConnection, helpers: PreparedHelpers): Promise<RunnerExit> {
    const exit = await this.runOnce(conn, helpers);
    if (!exit.runnerMissing || this.stopReason) return exit;
    // Tmp cleaners and reinstalls happen: redeploy and try once more.
    this.deps.log('system', 'runner missing on the server; redeploying and retrying once');
    await this.deps.runnerCache.invalidate(this.target.serverId);
    this.deps.runnerChannels.discard(conn);
    await this.ensureRunner(conn);
    return this.runOnce(conn, helpers);
  }

  private async runOnce(conn: PooledConnection, helpers: PreparedHelpers): Promise<RunnerExit> {
    this.abort.signal.throwIfAborted();
    const { runnerCache, limits, log } = this.deps;
    const capture = (stream: 'stdout' | 'stderr') =>
      new OutputCapture(
        { capBytes: limits.capBytes, maxLineBytes: limits.maxLineBytes },
        (line) => log(stream, line),
        (kept) => {
          this.truncated = true;
          log('system', `${stream} truncated after ${kept} bytes; the rest was discarded`);
        },
      );
    const session = new RunnerSession(conn, this.deps.runnerChannels, {
      command: runCommand(this.target.baseDir, runnerCache.artifact.hash),
      killGraceSeconds: limits.killGraceSeconds,
      stdout: capture('stdout'),
      stderr: capture('stderr'),
      onReady: (ready) => {
        const via = helpers.endpoint ? ` via ${helpers.endpoint}` : '';
        log(
          'system',
          `runner ${ready.version} on ${ready.platform}; helper mode ${helpers.mode}${via}`,
        );
      },
    });
    this.session = session;
    if (this.stopReason) session.signal(this.stopReason === 'timed_out' ? 'timeout' : 'cancel');
    const { execution } = this.plan;
    try {
      const exit = await session.run({
        runId: this.target.targetId,
        scriptType: this.plan.script.type,
        graceSeconds: limits.killGraceSeconds,
        script: this.plan.script.content,
        env: {
          ...this.plan.env,
          ...helpers.env,
          CRONIUM_EXECUTION_ID: execution.id,
          CRONIUM_JOB_ID: execution.jobId ?? execution.id,
          CRONIUM_SERVER_ID: this.target.serverId,
        },
        files: helpers.files,
        keep: helpers.keep,
      });
      this.phases.runMs = (this.phases.runMs ?? 0) + exit.durationMs;
      return exit;
    } finally {
      this.session = null;
    }
  }

  /** Ends the helpers' session and reads what the script handed them. */
  private async results(
    conn: PooledConnection,
    helpers: PreparedHelpers,
    exit: RunnerExit,
  ): Promise<HelperResults> {
    const results = await helpers.release();
    if (helpers.keep && exit.started && !conn.closed) return this.collect(conn);
    return results;
  }

  /** Bundled mode: read what the script's helpers wrote (and remove the run directory). */
  private async collect(conn: PooledConnection): Promise<HelperResults> {
    const { runnerCache, helpers, limits } = this.deps;
    const cmd = collectCommand(
      this.target.baseDir,
      runnerCache.artifact.hash,
      this.target.targetId,
    );
    try {
      const r = await execCommand(conn, cmd, { timeoutMs: limits.collectTimeoutMs });
      if (r.code !== 0) throw new Error(`collect exited ${r.code}: ${r.stderr.trim()}`);
      return await helpers.applyBundled(this.plan.execution.userId, r.stdoutRaw);
    } catch (e: any) {
      this.deps.log('system', `could not collect bundled-mode results: ${e?.message ?? e}`);
      return { output: null, condition: null };
    }
  }

  private classify(exit: RunnerExit): Classified {
    const base = { exitCode: exit.exitCode, signal: exit.signal };
    if (this.stopReason) return { ...base, status: this.stopReason, error: null };
    if (exit.lost) {
      const message = 'the SSH connection dropped while the script ran';
      return { ...base, status: 'failed', error: { code: 'connection_lost', message } };
    }
    if (!exit.started) {
      const message = exit.runnerMissing
        ? 'runner missing on the server even after redeploying'
        : `runner failed before the script started: ${exit.runnerError ?? 'no output'}`;
      return { ...base, status: 'failed', error: { code: 'runner_error', message } };
    }
    return { ...base, status: exit.exitCode === 0 ? 'succeeded' : 'failed', error: null };
  }

  private failure(e: unknown): Result {
    const none = {
      exitCode: null,
      signal: null,
      helperMode: null,
      fallbackReason: null,
      output: null,
      condition: null,
    };
    if (this.stopReason) return { ...none, status: this.stopReason, error: null };
    const err =
      e instanceof TargetError
        ? e
        : new TargetError('runner_error', (e as Error)?.message ?? String(e));
    return { ...none, status: 'failed', error: { code: err.code, message: err.message } };
  }
}
