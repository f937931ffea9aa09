import type { ClientChannel } from 'ssh2';
import { TargetError } from '../executions/error-codes';
import type { TargetPhases } from '../executions/records';
import type { TargetStatus } from '../executions/statuses';
import type { ExecutionTargetEntity } from '../persistence/entities';
import {
  collectCommand as remoteCollectCommand,
  runCommand as remoteRunCommand,
} from '../runner-cache/remote-commands';
import type {
  HelperResults,
  PreparedHelpers,
  RuntimeHelpersService,
} from '../runtime-helpers/runtime-helpers.service';
import { execCommand } from '../ssh/run-command';
import type { RunnerCacheService } from '../runner-cache/runner-cache.service';
import type { SshPool } from '../ssh/ssh-pool.service';
import type { PooledConnection } from '../ssh/ssh.types';
import type { ExecutionPlan, TargetPlan } from './execution-plan';
import { OutputCapture } from './output-capture';
import type { RunnerChannels } from './runner-channels';
import { buildRunPayload } from './run-payload';
import { normalizeSignal, signalFromShellStatus } from './signals';

export interface TargetRunDeps {
  pool: SshPool;
  runnerCache: RunnerCacheService;
  runnerChannels: RunnerChannels;
  helpers: RuntimeHelpersService;
  limits: { capBytes: number; maxLineBytes: number; killGraceSeconds: number };
  setStatus: (status: TargetStatus, patch?: Partial<ExecutionTargetEntity>) => Promise<void>;
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

interface RunnerExit {
  hello: boolean;
  exitCode: number | null;
  signal: string | null;
  lost: boolean;
  runnerMissing: boolean;
  runnerError: string | null;
}

const HELLO_MAX = 4096;
const IDLE_FLUSH_MS = 200;
/** How long past the kill grace we wait for the runner before dropping the channel. */
const HARD_STOP_MARGIN_MS = 5000;

/**
 * Runs an execution on one server: connect (pooled), ensure the runner, one exec channel
 * carrying the payload on stdin, stream output, record the exact exit status. Timeouts
 * and cancellation travel as words on the runner's control stream, so the runner kills
 * the whole remote process tree.
 */
export class TargetRun {
  private readonly abort = new AbortController();
  private stopReason: StopReason | null = null;
  private channel: ClientChannel | null = null;
  private hardStop: NodeJS.Timeout | null = null;
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

  get stopped(): StopReason | null {
    return this.stopReason;
  }

  /** Asks the runner to kill the remote tree; idempotent. */
  stop(reason: StopReason): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.abort.abort(new TargetError(reason, reason === 'timed_out' ? 'timed out' : 'cancelled'));
    this.signalRunner();
  }

  async run(): Promise<TargetOutcome> {
    const startedAt = Date.now();
    const timer = setTimeout(() => this.stop('timed_out'), this.plan.timeoutSeconds * 1000);
    let result: Omit<TargetOutcome, 'phases' | 'startedAt' | 'finishedAt' | 'truncated'>;
    try {
      result = await this.attempt(startedAt);
    } catch (e) {
      result = this.failure(e);
    } finally {
      clearTimeout(timer);
      if (this.hardStop) clearTimeout(this.hardStop);
    }
    return {
      ...result,
      truncated: this.truncated,
      phases: this.phases,
      startedAt,
      finishedAt: Date.now(),
    };
  }

  private async attempt(startedAt: number) {
    await this.deps.setStatus('connecting', { startedAt });
    const t0 = performance.now();
    const endpoint = await this.target.endpoint();
    const lease = await this.deps.pool.acquire(endpoint, this.abort.signal);
    this.phases.connectMs = Math.round(performance.now() - t0);
    try {
      const conn = lease.connection;
      await this.ensureRunner(conn);
      const helpers = await this.deps.helpers.prepare(conn, {
        targetId: this.target.targetId,
        serverId: this.target.serverId,
        serverName: this.target.serverName,
        executionId: this.plan.execution.id,
        jobId: this.plan.execution.jobId,
        eventId: this.plan.execution.eventId,
        userId: this.plan.execution.userId,
        input: this.plan.input,
        timeoutSeconds: this.plan.timeoutSeconds,
        mode: this.plan.helperMode,
      });
      this.phases.tunnelMs = helpers.tunnelMs;
      if (helpers.fallbackReason) {
        this.deps.log('system', `helper mode bundled (fallback: ${helpers.fallbackReason})`);
      }
      try {
        await this.deps.setStatus('running', {
          helperMode: helpers.mode,
          fallbackReason: helpers.fallbackReason,
        });
        let exit = await this.execRunner(conn, helpers);
        if (exit.runnerMissing && !this.stopReason) {
          // Tmp cleaners and reinstalls happen: redeploy and try once more.
          this.deps.log('system', 'runner missing on the server; redeploying and retrying once');
          await this.deps.runnerCache.invalidate(this.target.serverId);
          this.deps.runnerChannels.discard(conn);
          await this.ensureRunner(conn);
          exit = await this.execRunner(conn, helpers);
        }
        let results = await helpers.release();
        if (helpers.keep && exit.hello && !conn.closed) results = await this.collect(conn);
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

  /** Bundled mode: read what the script's helpers wrote (and remove the run directory). */
  private async collect(conn: PooledConnection): Promise<HelperResults> {
    const cmd = remoteCollectCommand(
      this.target.baseDir,
      this.deps.runnerCache.artifact.hash,
      this.target.targetId,
    );
    try {
      const r = await execCommand(conn, cmd, undefined, 30000, true);
      if (r.code !== 0) throw new Error(`collect exited ${r.code}: ${r.stderr.trim()}`);
      return await this.deps.helpers.applyBundled(this.plan.execution.userId, r.stdoutRaw!);
    } catch (e: any) {
      this.deps.log('system', `could not collect bundled-mode results: ${e?.message ?? e}`);
      return { output: null, condition: null };
    }
  }

  private async ensureRunner(conn: PooledConnection): Promise<void> {
    this.abort.signal.throwIfAborted();
    // A trusted cached runner needs no remote work: go straight from connecting to running.
    if (!this.deps.runnerCache.isTrusted(this.target.serverId, this.target.baseDir)) {
      await this.deps.setStatus('deploying');
    }
    const t = performance.now();
    const r = await this.deps.runnerCache.ensure(conn, this.target.serverId, this.target.baseDir);
    this.phases.deployMs = (this.phases.deployMs ?? 0) + Math.round(performance.now() - t);
    if (r.outcome === 'deployed') {
      this.deps.log(
        'system',
        `runner deployed (sha256 ${this.deps.runnerCache.artifact.hash.slice(0, 12)})`,
      );
    }
    this.abort.signal.throwIfAborted();
  }

  private classify(exit: RunnerExit) {
    const base = { exitCode: exit.exitCode, signal: exit.signal };
    if (this.stopReason) {
      return { ...base, status: this.stopReason as TargetStatus, error: null };
    }
    if (exit.lost) {
      return {
        ...base,
        status: 'failed' as const,
        error: {
          code: 'connection_lost',
          message: 'the SSH connection dropped while the script ran',
        },
      };
    }
    if (!exit.hello) {
      const message = exit.runnerMissing
        ? 'runner missing on the server even after redeploying'
        : `runner failed before the script started: ${exit.runnerError ?? 'no output'}`;
      return { ...base, status: 'failed' as const, error: { code: 'runner_error', message } };
    }
    return {
      ...base,
      status: exit.exitCode === 0 ? ('succeeded' as const) : ('failed' as const),
      error: null,
    };
  }

  private failure(e: unknown) {
    const none = {
      exitCode: null,
      signal: null,
      helperMode: null,
      fallbackReason: null,
      output: null,
      condition: null,
    };
    if (this.stopReason) return { ...none, status: this.stopReason as TargetStatus, error: null };
    const err =
      e instanceof TargetError
        ? e
        : new TargetError('runner_error', (e as Error)?.message ?? String(e));
    return { ...none, status: 'failed' as const, error: { code: err.code, message: err.message } };
  }

  private signalRunner(): void {
    const ch = this.channel;
    if (!ch) return;
    try {
      ch.write(this.stopReason === 'timed_out' ? 'timeout\n' : 'cancel\n');
    } catch {
      /* the channel is already going away */
    }
    if (!this.hardStop) {
      // A runner that cannot answer (host frozen) must not hold the target forever.
      this.hardStop = setTimeout(
        () => ch.close(),
        this.deps.limits.killGraceSeconds * 1000 + HARD_STOP_MARGIN_MS,
      );
    }
  }

  private async execRunner(conn: PooledConnection, helpers: PreparedHelpers): Promise<RunnerExit> {
    this.abort.signal.throwIfAborted();
    const { runnerCache, limits, log } = this.deps;
    const payload = buildRunPayload({
      runId: this.target.targetId,
      scriptType: this.plan.script.type,
      graceSeconds: limits.killGraceSeconds,
      script: this.plan.script.content,
      env: {
        ...this.plan.env,
        ...helpers.env,
        CRONIUM_EXECUTION_ID: this.plan.execution.id,
        CRONIUM_JOB_ID: this.plan.execution.jobId ?? this.plan.execution.id,
        CRONIUM_SERVER_ID: this.target.serverId,
      },
      files: helpers.files,
      keep: helpers.keep,
    });
    const started = performance.now();
    const channel = await this.deps.runnerChannels.open(
      conn,
      remoteRunCommand(this.target.baseDir, runnerCache.artifact.hash),
    );
    this.channel = channel;
    const capLimits = { capBytes: limits.capBytes, maxLineBytes: limits.maxLineBytes };
    const truncNote = (stream: string) => (kept: number) => {
      this.truncated = true;
      log('system', `${stream} truncated after ${kept} bytes; the rest was discarded`);
    };
    const out = new OutputCapture(capLimits, (l) => log('stdout', l), truncNote('stdout'));
    const err = new OutputCapture(capLimits, (l) => log('stderr', l), truncNote('stderr'));

    return new Promise<RunnerExit>((resolve) => {
      const exit: RunnerExit = {
        hello: false,
        exitCode: null,
        signal: null,
        lost: false,
        runnerMissing: false,
        runnerError: null,
      };
      let head = Buffer.alloc(0); // stdout before the runner's first line
      let earlyErr = Buffer.alloc(0); // stderr before it (the login shell's complaints)
      let gotExit = false;
      let done = false;
      let idle: NodeJS.Timeout | null = null;

      let dataTick = 0;
      const scheduleIdleFlush = () => {
        if (idle || (!out.hasPending() && !err.hasPending())) return;
        const armedAt = dataTick;
        idle = setTimeout(() => {
          // I/O callbacks run before setImmediate ones: output that arrived while the
          // loop was busy is consumed first, so a line is not cut just because we were late.
          setImmediate(() => {
            idle = null;
            if (dataTick !== armedAt) return scheduleIdleFlush();
            out.flush();
            err.flush();
          });
        }, IDLE_FLUSH_MS);
      };
      const finish = () => {
        if (done) return;
        done = true;
        if (idle) clearTimeout(idle);
        offClose();
        this.channel = null;
        if (!exit.hello) this.diagnose(exit, head, earlyErr);
        out.flush();
        err.flush();
        this.phases.runMs = (this.phases.runMs ?? 0) + Math.round(performance.now() - started);
        if (!gotExit && conn.closed) exit.lost = true;
        resolve(exit);
      };
      const offClose = conn.onClose(() => {
        exit.lost = !gotExit;
        finish();
      });

      channel.on('data', (chunk: Buffer) => {
        dataTick++;
        if (exit.hello) {
          out.write(chunk);
          return scheduleIdleFlush();
        }
        head = Buffer.concat([head, chunk]);
        const nl = head.indexOf(0x0a);
        if (nl === -1) {
          if (head.length > HELLO_MAX)
            exit.runnerError = 'unexpected output before the runner started';
          return;
        }
        const first = head.subarray(0, nl).toString('utf8');
        const m = /^CRONIUM1 ready (\S+) (.*)$/.exec(first);
        if (!m) return; // keep it in `head` for diagnose()
        exit.hello = true;
        const via = helpers.endpoint ? ` via ${helpers.endpoint}` : '';
        log('system', `runner ${m[1]} on ${m[2]}; helper mode ${helpers.mode}${via}`);
        if (earlyErr.length) err.write(earlyErr);
        const rest = head.subarray(nl + 1);
        head = Buffer.alloc(0);
        if (rest.length) out.write(rest);
        scheduleIdleFlush();
      });
      channel.stderr.on('data', (chunk: Buffer) => {
        dataTick++;
        if (exit.hello) {
          err.write(chunk);
          return scheduleIdleFlush();
        }
        if (earlyErr.length < HELLO_MAX) earlyErr = Buffer.concat([earlyErr, chunk]);
      });
      channel.on('exit', (code: number | null, signal?: string) => {
        gotExit = true;
        exit.exitCode = code;
        exit.signal = normalizeSignal(signal) ?? signalFromShellStatus(code);
      });
      channel.on('close', finish);
      channel.on('error', () => undefined);

      channel.write(payload);
      if (this.stopReason) this.signalRunner();
    });
  }

  /** No `CRONIUM1 ready` line: tell a vanished runner from one that failed. */
  private diagnose(exit: RunnerExit, head: Buffer, earlyErr: Buffer): void {
    const stdout = head.toString('utf8');
    const stderr = earlyErr.toString('utf8').trim();
    const m = /^CRONIUM1 error (.*)$/m.exec(stdout);
    if (m) {
      exit.runnerError = m[1];
      return;
    }
    if (
      (exit.exitCode === 127 || exit.exitCode === 2 || exit.exitCode === 126) &&
      /No such file|can't open|cannot open|not found/i.test(stderr)
    ) {
      exit.runnerMissing = true;
      return;
    }
    exit.runnerError = exit.runnerError ?? (stderr.slice(0, 500) || `exit ${exit.exitCode}`);
  }
}
