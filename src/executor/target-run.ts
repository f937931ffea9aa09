import { backoffDelay, RetryPolicy, sleep } from '../common/backoff';
import { TargetError } from '../executions/error-codes';
import type { TargetPhases, TargetRecord } from '../executions/records';
import type { TargetStatus } from '../executions/statuses';
import { attachCommand, collectCommand, runCommand } from '../runner/commands';
import { OutputCapture } from '../runner/output-capture';
import type { RunnerChannels } from '../runner/runner-channels';
import { isUnsafePath, missingInterpreter } from '../runner/protocol';
import { HARD_STOP_MARGIN_MS, RunnerExit, RunnerSession } from '../runner/runner-session';
import { type RunnerCacheService, unsafeBaseDir } from '../runner-cache/runner-cache.service';
import type {
  HelperRequest,
  HelperResults,
  PreparedHelpers,
  RuntimeHelpersService,
} from '../runtime-helpers/runtime-helpers.service';
import { execCommand } from '../ssh/run-command';
import type { SshPool } from '../ssh/ssh-pool.service';
import type { PooledConnection, SshLease } from '../ssh/ssh.types';
import type { ExecutionPlan, TargetPlan, TargetResume } from './execution-plan';

export interface TargetRunDeps {
  pool: Pick<SshPool, 'acquire'>;
  runnerCache: Pick<RunnerCacheService, 'artifact' | 'ensure' | 'isTrusted' | 'invalidate'>;
  runnerChannels: RunnerChannels;
  /** When the next standby of this target's connection may be opened (RunnerChannels). */
  refillAfter?: Promise<unknown>;
  helpers: Pick<RuntimeHelpersService, 'prepare' | 'resumeApi' | 'applyBundled'>;
  limits: {
    capBytes: number;
    maxLineBytes: number;
    killGraceSeconds: number;
    /** `ulimit -u` for the script (0: none). */
    maxProcesses?: number;
    collectTimeoutMs: number;
    /** A channel refused for a moment (MaxSessions) is tried again. */
    channelOpenRetry: RetryPolicy;
    /** The runner's lease: how long a script outlives a lost connection. */
    leaseSeconds: number;
    heartbeatMs: number;
    /** Pause between re-attach attempts after a drop (the lease bounds them). */
    reattachBackoff: Omit<RetryPolicy, 'attempts'>;
  };
  /**
   * Stores the target's status (with `patch`) and announces it (a status event); `how`
   * may leave out either: a status announced at once is stored later, in one write.
   */
  setStatus: (
    status: TargetStatus,
    patch?: Partial<TargetRecord>,
    how?: { store?: boolean; announce?: boolean },
  ) => Promise<void>;
  /** Recorded on the target as it starts. */
  replicaId: string;
  /** `offset`: for stdout/stderr, the stream offset just past the entry. */
  log: (stream: 'stdout' | 'stderr' | 'system', text: string, offset?: number) => void;
  /** The stream offsets of this target's stored log entries (following a run found there). */
  storedOffsets?: () => Promise<{ stdout: number; stderr: number }>;
}

export type StopReason = 'cancelled' | 'timed_out';

export interface TargetOutcome {
  /**
   * This replica let go of the target (a hand-over): nothing is recorded, the run goes on
   * under its lease, and whoever takes the execution over re-attaches.
   */
  detached: boolean;
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

/** The runner's word for why a target is stopped. */
const controlWordFor = (reason: StopReason) => (reason === 'timed_out' ? 'timeout' : 'cancel');

type Classified = Pick<TargetOutcome, 'status' | 'exitCode' | 'signal' | 'error'>;
type Result = Omit<TargetOutcome, 'phases' | 'startedAt' | 'finishedAt' | 'truncated' | 'detached'>;

/**
 * Payload first: a status that lasts less than this (`connecting` on a warm connection)
 * is announced at once but never stored on its own; the row is written once the run has
 * started, with everything known by then, in one write.
 */
const STORE_AFTER_MS = 50;

/** The runner's error when the run's directory exists already (runner.sh, `run`). */
const RUN_EXISTS = 'run directory already exists';

/** Thrown into a target's phases when this replica lets go of it. */
class Detached extends Error {}

/** A pause that does not keep the process alive (background retries). */
const unrefDelay = (ms: number) =>
  new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)).unref());

/** An abort signal that fires at `at` (epoch ms), or with `also`. */
function abortAt(at: number, also: AbortSignal): AbortSignal {
  return AbortSignal.any([also, AbortSignal.timeout(Math.max(0, at - Date.now()))]);
}

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
  /** The pooled connection this target holds a channel slot on (changes on re-attach). */
  private lease: SshLease | null = null;
  private truncated = false;
  /** Kept across re-attaches, so a line cut by a drop continues where it stopped. */
  private out: OutputCapture;
  private err: OutputCapture;
  /** When the connection was lost, while re-attaching. */
  private lostAt: number | null = null;
  /** Set when this process took the target over from one that stopped or died. */
  private takenOver = false;
  private detached = false;
  /**
   * The hard stop: a timeout or cancel the host did not confirm within the kill grace.
   * Aborted then: nothing waits on the host any longer (connects, re-attaches).
   */
  private readonly giveUp = new AbortController();
  private hardStopTimer: NodeJS.Timeout | null = null;
  private onHardStop: ((r: Result) => void) | null = null;
  /** The outcome is decided: late status changes and log lines of this run are dropped. */
  private settled = false;
  /** Status writes, in order, off the job's critical path (chainStatus). */
  private statusWrites: Promise<void> = Promise.resolve();
  /** Stores `connecting` if the start takes longer than STORE_AFTER_MS. */
  private storeTimer: NodeJS.Timeout | null = null;
  /** Announces and stores `running` once the runner has the payload (attempt). */
  private onStarted: (() => void) | null = null;
  /** What the target's row gets when it starts here (startedAt, replicaId). */
  private startPatch: Partial<TargetRecord> = {};
  private readonly deps: TargetRunDeps;
  private readonly phases: TargetPhases = {
    connectMs: null,
    deployMs: null,
    tunnelMs: null,
    runMs: null,
  };

  constructor(
    deps: TargetRunDeps,
    private readonly plan: ExecutionPlan,
    readonly target: TargetPlan,
  ) {
    this.deps = {
      ...deps,
      setStatus: async (status, patch, how) => {
        if (!this.settled) await deps.setStatus(status, patch, how);
      },
      log: (stream, text, offset) => {
        if (!this.settled) deps.log(stream, text, offset);
      },
    };
    this.out = this.capture('stdout');
    this.err = this.capture('stderr');
  }

  /**
   * Asks the runner to kill the remote tree; idempotent. Whatever the host does, the
   * target ends within the kill grace (+ HARD_STOP_MARGIN_MS) from here: see hardStop.
   */
  stop(reason: StopReason): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.abort.abort(new TargetError(reason, reason === 'timed_out' ? 'timed out' : 'cancelled'));
    this.session?.signal(controlWordFor(reason));
    if (this.settled) return;
    this.hardStopTimer = setTimeout(
      () => this.hardStop(),
      this.deps.limits.killGraceSeconds * 1000 + HARD_STOP_MARGIN_MS,
    );
  }

  /**
   * The runner did not confirm the kill in time (a frozen or dead host, a connection
   * that is gone and not coming back): stop waiting. The target ends with the stop's
   * status and says so; its connection is dropped so the pool starts afresh; the word is
   * sent again in the background once the host answers (retryKill).
   */
  private hardStop(): void {
    if (this.settled || this.detached || !this.stopReason) return;
    const grace = this.deps.limits.killGraceSeconds + HARD_STOP_MARGIN_MS / 1000;
    const what = this.stopReason === 'timed_out' ? 'kill at the timeout' : 'cancel';
    this.giveUp.abort(new TargetError(this.stopReason, `the host did not confirm the ${what}`));
    this.lease?.connection.destroy(`the host did not confirm the ${what} within ${grace} s`);
    const retried =
      this.stopReason === 'timed_out'
        ? 'the runner kills the tree at its own deadline, and the kill is asked again once the host answers'
        : `the cancel is sent again once the host answers (for up to ${this.deps.limits.leaseSeconds} s; after that the runner's lease kills the tree)`;
    this.onHardStop?.({
      status: this.stopReason,
      exitCode: null,
      signal: null,
      error: {
        code: 'connection_lost',
        message: `the host did not confirm the ${what} within ${grace} s; the SSH connection was dropped and ${retried}`,
      },
      helperMode: null,
      fallbackReason: null,
      output: null,
      condition: null,
    });
  }

  /**
   * Lets go of the target without stopping its run (which goes on under the lease): the
   * session is dropped, and the outcome says `detached`.
   */
  detach(): void {
    if (this.detached) return;
    this.detached = true;
    this.abort.abort(new Detached('handed over'));
    this.session?.detach();
  }

  /**
   * Starts the target. With `probe` it may already have been started by a replica that
   * died: attach if the server knows the run.
   */
  async run(probe?: TargetResume): Promise<TargetOutcome> {
    const startedAt = Date.now();
    return this.outcome(startedAt, () => this.attempt(startedAt, probe));
  }

  /**
   * Takes over a target another process started (it restarted, died or let go): attach
   * from the offsets of the stored log entries, with the deadline counted from the real
   * start. Bundled mode collects as usual; in API mode the script's tunnel port is
   * forwarded again and its session re-opened, so its endpoint and token keep working.
   */
  async resume(
    from: { stdout: number; stderr: number },
    resume: TargetResume & { how: 'attach' },
  ): Promise<TargetOutcome> {
    this.takenOver = true;
    this.out = this.capture('stdout', from.stdout);
    this.err = this.capture('stderr', from.stderr);
    return this.outcome(resume.startedAt, () => this.attemptResume(resume));
  }

  /**
   * Runs `work` under the target's deadline (start + timeout) and dresses its result.
   * A hard stop decides the outcome without waiting for `work`, which then winds down
   * on its own (its connection is gone) and records nothing.
   */
  private async outcome(startedAt: number, work: () => Promise<Result>): Promise<TargetOutcome> {
    const left = startedAt + this.plan.timeoutSeconds * 1000 - Date.now();
    const timer = setTimeout(() => this.stop('timed_out'), Math.max(0, left));
    const done = (async () => {
      try {
        return await work();
      } catch (e) {
        return this.failure(e);
      }
    })();
    const hardStopped = new Promise<Result>((resolve) => (this.onHardStop = resolve));
    const result = await Promise.race([done, hardStopped]);
    clearTimeout(timer);
    if (this.hardStopTimer) clearTimeout(this.hardStopTimer);
    this.onHardStop = null;
    this.settled = true;
    if (this.giveUp.signal.aborted) {
      void done.then(() => this.retryKill()).catch(() => undefined);
    }
    return {
      ...result,
      detached: this.detached,
      truncated: this.truncated,
      phases: this.phases,
      startedAt,
      finishedAt: Date.now(),
    };
  }

  private async attemptResume(resume: TargetResume): Promise<Result> {
    await this.deps.setStatus('running', { replicaId: this.deps.replicaId });
    // Not abortable by the stop: a cancel that came with the take-over must still reach
    // the runner (only a hard stop gives up).
    this.lease = await this.connect(false);
    try {
      const conn = this.lease.connection;
      if (!this.stopReason) await this.ensureRunner(conn);
      const helpers = await this.takenOverHelpers(conn, resume);
      try {
        return await this.conclude(helpers, await this.follow(conn, helpers, 'attach'));
      } finally {
        await helpers.release();
      }
    } finally {
      this.lease?.release();
      this.lease = null;
    }
  }

  /** The helpers of a run this process did not start. */
  private async takenOverHelpers(
    conn: PooledConnection,
    resume: TargetResume,
  ): Promise<PreparedHelpers> {
    if (resume.helperMode === 'bundled') return attachedHelpers('bundled');
    if (resume.helperMode === 'api' && (resume.tunnelPort || resume.tunnelSocket)) {
      try {
        return await this.deps.helpers.resumeApi(conn, this.helperRequest(), {
          port: resume.tunnelPort ?? 0,
          socketPath: resume.tunnelSocket,
          results: resume.results,
        });
      } catch (e: any) {
        this.deps.log(
          'system',
          `the helper API port could not be forwarded again (${e?.message ?? e}); helper calls will fail`,
        );
      }
    }
    return attachedHelpers('api');
  }

  /**
   * With `probe` (a target a replica that died may have started): attach first; only a
   * server that knows no such run gets a start.
   */
  private async attempt(startedAt: number, probe?: TargetResume): Promise<Result> {
    this.startPatch = { startedAt, replicaId: this.deps.replicaId };
    await this.deps.setStatus('connecting', this.startPatch, { store: false });
    this.storeTimer = setTimeout(() => {
      this.storeTimer = null;
      this.storeLater('connecting', this.startPatch);
    }, STORE_AFTER_MS);
    try {
      return await this.attemptConnected(probe);
    } finally {
      this.cancelStoreTimer();
      // Every status write of this attempt lands before the final record does.
      await this.statusWrites;
    }
  }

  private async attemptConnected(probe?: TargetResume): Promise<Result> {
    this.lease = await this.connect();
    try {
      const conn = this.lease.connection;
      await this.ensureRunner(conn);
      if (probe) {
        const attached = attachedHelpers(probe.helperMode === 'bundled' ? 'bundled' : 'api');
        const exit = await this.follow(conn, attached, 'attach');
        if (!exit.unknownRun) {
          this.takenOver = true;
          return await this.conclude(attached, exit);
        }
      }
      const helpers = await this.prepareHelpers(conn);
      const running: Partial<TargetRecord> = {
        ...this.startPatch,
        helperMode: helpers.mode,
        fallbackReason: helpers.fallbackReason,
        tunnelPort: helpers.port,
        tunnelSocket: helpers.socketPath,
      };
      // Payload first: `running` is announced and stored once the runner has the payload.
      this.onStarted = () => {
        this.cancelStoreTimer();
        void this.deps.setStatus('running', running, { store: false });
        this.storeLater('running', running);
      };
      try {
        return await this.conclude(helpers, await this.runScript(conn, helpers));
      } finally {
        this.onStarted = null;
        await helpers.release();
      }
    } finally {
      this.lease?.release();
      this.lease = null;
    }
  }

  /** After the first session: re-attach if it was lost, then results and the verdict. */
  private async conclude(helpers: PreparedHelpers, first: RunnerExit): Promise<Result> {
    if (this.detached) throw new Detached('handed over');
    const exit = first.lost ? await this.reattach(helpers, first) : first;
    if (this.detached) throw new Detached('handed over');
    this.out.flush();
    this.err.flush();
    let verdict = this.classify(exit);
    let results: HelperResults = { output: null, condition: null };
    try {
      results = await this.results(helpers, exit);
    } catch (e: any) {
      // Never a quiet success without the results the script handed over.
      const message = `the script ended, but its bundled-mode results could not be collected: ${e?.message ?? e}`;
      this.deps.log('system', message);
      if (!verdict.error)
        verdict = { ...verdict, status: 'failed', error: { code: 'runner_error', message } };
    }
    return {
      ...verdict,
      helperMode: helpers.mode,
      fallbackReason: helpers.fallbackReason,
      ...results,
    };
  }

  private async connect(abortable = true): Promise<SshLease> {
    const t0 = performance.now();
    const endpoint = await this.target.endpoint();
    const signal = abortable ? this.abort.signal : this.giveUp.signal;
    const lease = await this.deps.pool.acquire(endpoint, signal);
    this.phases.connectMs = Math.round(performance.now() - t0);
    return lease;
  }

  private async ensureRunner(conn: PooledConnection): Promise<void> {
    this.abort.signal.throwIfAborted();
    const { runnerCache } = this.deps;
    // A trusted cached runner needs no remote work: go straight from connecting to running.
    if (!runnerCache.isTrusted(this.target.serverId, this.target.baseDir)) {
      this.cancelStoreTimer();
      await this.chainStatus('deploying', this.startPatch);
    }
    const t = performance.now();
    const r = await runnerCache.ensure(conn, this.target.serverId, this.target.baseDir);
    // A hit (a runner trusted here) asked the server nothing: no deploy time, whatever the
    // event loop was busy with around the call.
    const spent = r.outcome === 'hit' ? 0 : Math.round(performance.now() - t);
    this.phases.deployMs = (this.phases.deployMs ?? 0) + spent;
    if (r.outcome === 'deployed') {
      this.deps.log('system', `runner deployed (sha256 ${runnerCache.artifact.hash.slice(0, 12)})`);
    }
    this.abort.signal.throwIfAborted();
  }

  /** Stores and announces a status after the status writes before it. */
  private chainStatus(
    status: TargetStatus,
    patch: Partial<TargetRecord>,
    how?: { store?: boolean; announce?: boolean },
  ): Promise<void> {
    const write = this.statusWrites.then(() => this.deps.setStatus(status, patch, how));
    this.statusWrites = write.catch(() => undefined);
    return write;
  }

  /**
   * Stores a status already announced, in the background. A write that fails (after its
   * retries) only leaves the row behind for a moment: the final record follows.
   */
  private storeLater(status: TargetStatus, patch: Partial<TargetRecord>): void {
    this.chainStatus(status, patch, { announce: false }).catch((e: any) =>
      this.deps.log('system', `the ${status} status could not be stored: ${e?.message ?? e}`),
    );
  }

  private cancelStoreTimer(): void {
    if (this.storeTimer) clearTimeout(this.storeTimer);
    this.storeTimer = null;
  }

  private helperRequest(): HelperRequest {
    const { execution } = this.plan;
    return {
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
      scriptType: this.plan.script.type,
      baseDir: this.target.baseDir,
    };
  }

  private async prepareHelpers(conn: PooledConnection): Promise<PreparedHelpers> {
    const helpers = await this.deps.helpers.prepare(conn, this.helperRequest());
    this.phases.tunnelMs = helpers.tunnelMs;
    if (helpers.fallbackReason) {
      this.deps.log('system', `helper mode bundled (fallback: ${helpers.fallbackReason})`);
    }
    return helpers;
  }

  /** Runs the script; a runner that vanished from the server is redeployed once. */
  private async runScript(conn: PooledConnection, helpers: PreparedHelpers): Promise<RunnerExit> {
    const exit = await this.follow(conn, helpers, 'start');
    if (exit.runnerError?.startsWith(RUN_EXISTS) && !this.stopReason) {
      // Payload first: a process that died between handing the runner its payload and
      // storing `running` left the target queued, and the run exists: follow it, from
      // what that process stored of its output.
      const from = (await this.deps.storedOffsets?.()) ?? { stdout: 0, stderr: 0 };
      this.out = this.capture('stdout', from.stdout);
      this.err = this.capture('stderr', from.stderr);
      const attached = await this.follow(conn, attachedHelpers(helpers.mode), 'attach');
      if (!attached.unknownRun) {
        this.takenOver = true;
        this.deps.log('system', 'the run had already started here; following it');
        return attached;
      }
      return exit;
    }
    if (isUnsafePath(exit.runnerError)) {
      // Never trust that runner again before a deploy has checked the base dir anew.
      await this.deps.runnerCache.invalidate(this.target.serverId);
      this.deps.runnerChannels.discard(conn);
      return exit;
    }
    if (!exit.runnerMissing || this.stopReason) return exit;
    // Tmp cleaners and reinstalls happen: redeploy and try once more.
    this.deps.log('system', 'runner missing on the server; redeploying and retrying once');
    await this.deps.runnerCache.invalidate(this.target.serverId);
    this.deps.runnerChannels.discard(conn);
    await this.ensureRunner(conn);
    return this.follow(conn, helpers, 'start');
  }

  /**
   * The connection dropped while the script ran, which goes on under the runner's lease:
   * reconnect and re-attach from the offsets received so far until the trailer arrives,
   * the run turns out gone, or a whole lease has passed.
   */
  private async reattach(helpers: PreparedHelpers, lost: RunnerExit): Promise<RunnerExit> {
    const { limits, pool, log } = this.deps;
    this.lostAt = Date.now();
    const until = this.lostAt + limits.leaseSeconds * 1000;
    let exit = lost;
    const going = () =>
      exit.lost && !this.detached && !this.giveUp.signal.aborted && Date.now() < until;
    for (let attempt = 0; going(); attempt++) {
      if (attempt > 0) {
        const pause = backoffDelay(limits.reattachBackoff, attempt - 1);
        await sleep(Math.min(pause, until - Date.now()), this.giveUp.signal).catch(() => undefined);
        if (!going()) break;
      }
      this.lease?.release();
      this.lease = null;
      try {
        // Not aborted by the stop (a cancel or timeout must still reach the runner): by
        // the end of the lease, or a hard stop.
        const endpoint = await this.target.endpoint();
        this.lease = await pool.acquire(endpoint, abortAt(until, this.giveUp.signal));
        if (!(await helpers.reconnect(this.lease.connection))) {
          log('system', 'the helper API port could not be forwarded again; helper calls will fail');
        }
        exit = await this.follow(this.lease.connection, helpers, 'attach');
      } catch (e: any) {
        log('system', `re-attach attempt ${attempt + 1} failed: ${e?.message ?? e}`);
        exit = { ...exit, lost: true };
      }
      if (exit.unknownRun) break;
    }
    this.lostAt = null;
    return exit;
  }

  /**
   * After a hard stop, for up to a lease: once the host answers again, attach and repeat
   * the word, so a cancel still kills the tree (a timeout the runner has enforced by
   * itself at its deadline; the attach then takes the trailer and acks, which removes
   * the run directory). The outcome is decided already: nothing here is recorded.
   */
  private async retryKill(): Promise<void> {
    const { limits, pool } = this.deps;
    const until = Date.now() + limits.leaseSeconds * 1000;
    const never = new AbortController().signal;
    const helpers = attachedHelpers('api');
    for (let attempt = 0; Date.now() < until; attempt++) {
      await unrefDelay(Math.min(backoffDelay(limits.reattachBackoff, attempt), until - Date.now()));
      let lease: SshLease | null = null;
      try {
        lease = await pool.acquire(await this.target.endpoint(), abortAt(until, never));
        const exit = await this.follow(lease.connection, helpers, 'attach');
        if (exit.ended || exit.unknownRun) return;
      } catch {
        /* not back yet (or the service is shutting down): the lease ends it */
      } finally {
        lease?.release();
      }
    }
  }

  private capture(stream: 'stdout' | 'stderr', from = 0): OutputCapture {
    const { limits, log } = this.deps;
    return new OutputCapture(
      { capBytes: limits.capBytes, maxLineBytes: limits.maxLineBytes },
      (line, offset) => log(stream, line, offset),
      (kept) => {
        this.truncated = true;
        log('system', `${stream} truncated after ${kept} bytes; the rest was discarded`);
      },
      from,
    );
  }

  /** One runner session: start the run, or attach to it from the offsets received. */
  private async follow(
    conn: PooledConnection,
    helpers: PreparedHelpers,
    how: 'start' | 'attach',
  ): Promise<RunnerExit> {
    if (how === 'start') this.abort.signal.throwIfAborted();
    const { runnerCache, limits, log } = this.deps;
    const session = new RunnerSession(conn, this.deps.runnerChannels, {
      killGraceSeconds: limits.killGraceSeconds,
      heartbeatMs: limits.heartbeatMs,
      refillAfter: this.deps.refillAfter,
      stdout: this.out,
      stderr: this.err,
      onReady: (ready) => {
        // The run has the payload (or, found already there, is followed): it runs.
        this.onStarted?.();
        this.onStarted = null;
        if (ready.kind === 'attached') {
          if (this.lostAt === null) return log('system', 'taken over; re-attached to the run');
          return log('system', `connection lost; re-attached after ${Date.now() - this.lostAt} ms`);
        }
        const via = helpers.endpoint ? ` via ${helpers.endpoint}` : '';
        log(
          'system',
          `runner ${ready.version} on ${ready.platform}; helper mode ${helpers.mode}${via}`,
        );
      },
      onNoise: (text) => log('system', `login environment said on stderr: ${text}`),
    });
    this.session = session;
    if (this.stopReason) session.signal(controlWordFor(this.stopReason));
    const { execution, become } = this.plan;
    const hash = runnerCache.artifact.hash;
    const becomePassword = become ? (await this.target.endpoint()).becomePassword : undefined;
    try {
      const exit =
        how === 'attach'
          ? await session.attach(
              attachCommand(
                this.target.baseDir,
                hash,
                this.target.targetId,
                this.out.position,
                this.err.position,
              ),
            )
          : await session.start(runCommand(this.target.baseDir, hash), {
              runId: this.target.targetId,
              scriptType: this.plan.script.type,
              graceSeconds: limits.killGraceSeconds,
              timeoutSeconds: this.plan.timeoutSeconds,
              leaseSeconds: limits.leaseSeconds,
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
              maxProcesses: limits.maxProcesses,
              become: become ? { user: become.user, password: becomePassword } : undefined,
            });
      this.phases.runMs = (this.phases.runMs ?? 0) + exit.durationMs;
      return exit;
    } finally {
      this.session = null;
    }
  }

  /** Ends the helpers' session and reads what the script handed them. */
  private async results(helpers: PreparedHelpers, exit: RunnerExit): Promise<HelperResults> {
    const results = await helpers.release();
    const conn = this.lease?.connection;
    if (!helpers.keep || !exit.ended) return results;
    if (exit.collected) return this.applyBundled(exit.collected);
    if (conn && !conn.closed) return this.collect(conn);
    return results;
  }

  /**
   * Bundled mode: read what the script's helpers wrote (and remove the run directory).
   * Throws when they cannot be read or applied.
   */
  private async collect(conn: PooledConnection): Promise<HelperResults> {
    const { runnerCache, limits } = this.deps;
    const cmd = collectCommand(
      this.target.baseDir,
      runnerCache.artifact.hash,
      this.target.targetId,
    );
    const r = await execCommand(conn, cmd, {
      timeoutMs: limits.collectTimeoutMs,
      openRetry: limits.channelOpenRetry,
    });
    if (r.code !== 0) throw new Error(`collect exited ${r.code}: ${r.stderr.trim()}`);
    return this.applyBundled(r.stdoutRaw);
  }

  /** Applies a `collect` answer (from the trailer or a `collect` command). */
  private async applyBundled(collected: Buffer): Promise<HelperResults> {
    const { helpers } = this.deps;
    const results = await helpers.applyBundled(this.plan.execution.userId, collected);
    for (const why of results.refused ?? [])
      this.deps.log('system', `helper result refused: ${why}`);
    return results;
  }

  private classify(exit: RunnerExit): Classified {
    const base = { exitCode: exit.exitCode, signal: exit.signal };
    if (this.stopReason) return { ...base, status: this.stopReason, error: null };
    if (exit.ended) {
      if (exit.reason === 'cancel') return { ...base, status: 'cancelled', error: null };
      if (exit.reason === 'timeout') return { ...base, status: 'timed_out', error: null };
      if (exit.reason === 'become') {
        const message = `sudo refused to run the script as ${this.plan.become?.user ?? 'root'} on server ${this.target.serverName} (wrong or missing becomePassword, or no sudoers rule; sudo's words are in stderr); the script was not started`;
        return { ...base, status: 'failed', error: { code: 'become_failed', message } };
      }
      if (exit.reason === 'lease') {
        const message = 'nobody re-attached within the lease; the runner killed the script';
        return { ...base, status: 'failed', error: { code: this.lostCode(), message } };
      }
      return { ...base, status: exit.exitCode === 0 ? 'succeeded' : 'failed', error: null };
    }
    if (exit.lost || exit.unknownRun) {
      const message = exit.unknownRun
        ? 'the run was gone when re-attaching (its lease had run out)'
        : 'the SSH connection dropped and re-attaching failed for a whole lease';
      return { ...base, status: 'failed', error: { code: this.lostCode(), message } };
    }
    if (isUnsafePath(exit.runnerError)) {
      const { code, message } = unsafeBaseDir(exit.runnerError!);
      return { ...base, status: 'failed', error: { code, message } };
    }
    const interpreter = missingInterpreter(exit.runnerError);
    if (interpreter) {
      const message = `${interpreter} is not installed on server ${this.target.serverName} (not found on the SSH user's PATH); the script was not started`;
      return { ...base, status: 'failed', error: { code: 'interpreter_missing', message } };
    }
    const message = exit.runnerMissing
      ? 'runner missing on the server even after redeploying'
      : `runner failed before the script started: ${exit.runnerError ?? 'no output'}`;
    return { ...base, status: 'failed', error: { code: 'runner_error', message } };
  }

  /** A run lost while its orchestrator was gone is `orchestrator_restarted`. */
  private lostCode(): 'connection_lost' | 'orchestrator_restarted' {
    return this.takenOver ? 'orchestrator_restarted' : 'connection_lost';
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

/** Helpers of a run this process did not start: files in bundled mode, else none served. */
function attachedHelpers(mode: 'api' | 'bundled'): PreparedHelpers {
  return {
    mode,
    fallbackReason: null,
    endpoint: null,
    port: null,
    socketPath: null,
    env: {},
    files: {},
    keep: mode === 'bundled',
    tunnelMs: null,
    reconnect: async () => mode === 'bundled',
    release: async () => ({ output: null, condition: null }),
  };
}
