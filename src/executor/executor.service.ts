import {
  Inject,
  Injectable,
  Logger,
  OnModuleDestroy,
  OnModuleInit,
  Optional,
} from '@nestjs/common';
import { retry } from '../common/backoff';
import { SecretBox } from '../common/secret-box';
import { Semaphore } from '../common/semaphore';
import { AppConfig } from '../config/app-config';
import { executionStatus, summarize } from '../executions/aggregate';
import { TERMINAL_TARGET_STATUSES, type TargetStatus } from '../executions/statuses';
import { MetricsService } from '../metrics/metrics.service';
import type { TargetRecord } from '../executions/records';
import { resolveMaxErrors } from '../executions/max-errors';
import { batchHalt, isFailure } from '../executions/batches';
import { NotificationsService } from '../notifications/notifications.service';
import { ServersService } from '../servers/servers.service';
import { ExecutionEventsRepository } from '../persistence/execution-events.repository';
import { ExecutionsRepository } from '../persistence/executions.repository';
import { isTransientWriteError } from '../persistence/write-errors';
import { RunnerCacheService } from '../runner-cache/runner-cache.service';
import { RuntimeHelpersService } from '../runtime-helpers/runtime-helpers.service';
import { SshPool } from '../ssh/ssh-pool.service';
import { EventWriter } from '../status/event-writer.service';
import type { EmittedEvent } from '../status/execution-event';
import { ExecutionEventsService } from '../status/execution-events.service';
import { ClusterBus } from '../queue/cluster-bus';
import type { DriveResult } from '../queue/work-queue';
import { WorkQueue } from '../queue/work-queue';
import { batchPlan, type ExecutionPlan, type TargetPlan } from './execution-plan';
import { RunnerChannels } from '../runner/runner-channels';
import { openJob, SealedJob, sealJob } from './sealed-job';
import { TargetOutcome, TargetRun } from './target-run';

interface Running {
  plan: ExecutionPlan;
  runs: Map<string, TargetRun>;
  cancelled: boolean;
  /** Set once the error budget is spent: targets not yet started are skipped. */
  budgetSpent: boolean;
  /** This replica let go of it (hand-over, or another replica took it over): not finalized. */
  detached: boolean;
  done: Promise<void>;
  /** The final status of each target of the plan that has ended here. */
  ended: Map<string, TargetStatus>;
  /** Set once a batch failed more than its maxFailPercentage: why the rest are skipped. */
  halted: string | null;
  /** Ends a pause between batches early (cancel, hand-over). */
  wake: () => void;
}

/** How long a plan submitted here waits to be picked up here before only the database has it. */
const FRESH_PLAN_MS = 60_000;
const isTerminal = (s: TargetStatus) => (TERMINAL_TARGET_STATUSES as readonly string[]).includes(s);

/**
 * Runs executions: fans out over targets with a per-job and a global concurrency limit,
 * applies the error budget, aggregates, and persists. It only emits events; it knows
 * nothing of websockets. Work arrives through the queue port (one unit per execution);
 * whichever replica drives an execution owns it in the database, heartbeats, and gives
 * it back on shutdown, and whoever takes it over re-attaches to what already runs.
 */
@Injectable()
export class ExecutorService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(ExecutorService.name);
  private readonly running = new Map<string, Running>();
  private readonly global: Semaphore;
  private readonly runnerChannels: RunnerChannels;
  private ticker: NodeJS.Timeout | null = null;
  private ticking = false;
  /** Plans submitted on this replica, so picking them up here needs no database read. */
  private readonly fresh = new Map<string, ExecutionPlan>();
  /** Executions being claimed or driven here: a second delivery joins the first. */
  private readonly driving = new Map<string, Promise<DriveResult>>();
  private readonly box: SecretBox;
  private handingOver = false;
  /** Past the shutdown grace: nothing new starts here. */
  private draining = false;

  constructor(
    private readonly config: AppConfig,
    private readonly repo: ExecutionsRepository,
    private readonly storedEvents: ExecutionEventsRepository,
    private readonly events: ExecutionEventsService,
    private readonly writer: EventWriter,
    private readonly pool: SshPool,
    private readonly runnerCache: RunnerCacheService,
    private readonly metrics: MetricsService,
    private readonly helpers: RuntimeHelpersService,
    private readonly servers: ServersService,
    @Inject(WorkQueue) private readonly queue: WorkQueue,
    @Inject(ClusterBus) private readonly bus: ClusterBus,
    /** Absent only in unit specs that build the executor by hand. */
    @Optional() private readonly notifications?: NotificationsService,
  ) {
    this.box = new SecretBox(config.secrets.key);
    this.global = new Semaphore(config.executor.globalConcurrency);
    this.runnerChannels = new RunnerChannels(
      config.executor.prewarmRunner,
      config.ssh.channelOpenRetry,
    );
  }

  /**
   * Takes over what a previous process left in flight (on SQLite, which one process
   * holds at a time, everything unfinished; elsewhere what this replica owned or what
   * has gone stale), then takes work from the queue, keeps this replica's heartbeat and
   * sweeps for stale owners.
   */
  async onModuleInit(): Promise<void> {
    this.bus.onCancel((id) => this.cancel(id));
    this.queue.consume((id) => this.drive(id));
    await this.sweep(this.config.database.url.startsWith('sqlite:') && !this.queue.shared);
    const every = this.config.executor.ownerHeartbeatSeconds * 1000;
    this.ticker = setInterval(() => void this.tick(), every);
    this.ticker.unref();
  }

  onModuleDestroy(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = null;
  }

  /** The sealed form of a plan's job, stored with the execution (see keepJobForRerun). */
  seal(executionId: string, plan: Pick<ExecutionPlan, 'script' | 'env' | 'input'>): string {
    const job: SealedJob = { script: plan.script, env: plan.env, input: plan.input };
    return sealJob(this.box, executionId, job);
  }

  /** Queues a stored execution (its plan kept here in case this replica picks it up). */
  async submit(plan: ExecutionPlan): Promise<void> {
    const id = plan.execution.id;
    this.fresh.set(id, plan);
    // Alone, it is picked up here at once; shared, another replica may take it instead.
    if (this.queue.shared) setTimeout(() => this.fresh.delete(id), FRESH_PLAN_MS).unref();
    await this.queue.submit(id);
  }

  private async tick(): Promise<void> {
    if (this.ticking || this.handingOver) return;
    this.ticking = true;
    try {
      // Only what is driven here: an execution claimed but not driven goes stale.
      const ids = [...new Set([...this.running.keys(), ...this.driving.keys()])];
      await this.repo.heartbeat(this.config.replicaId, Date.now(), ids);
      await this.letGoOfLost();
      await this.sweep(false);
    } catch (e: any) {
      this.logger.warn(`owner heartbeat or take-over failed: ${e?.message ?? e}`);
    } finally {
      this.ticking = false;
    }
  }

  /**
   * Unfinished executions nobody drives (their owner, or the queue, has been quiet for
   * `executor.ownerStaleSeconds`; `exclusive`: all of them): with a shared queue they go
   * back to it (any replica may pick them up); alone, this process drives them.
   */
  private async sweep(exclusive: boolean): Promise<void> {
    const staleBefore = this.staleBefore(false);
    for (const execution of await this.repo.unfinished()) {
      if (this.running.has(execution.id) || this.driving.has(execution.id)) continue;
      const quietSince = execution.heartbeatAt ?? execution.createdAt;
      if (!exclusive && quietSince >= staleBefore) continue;
      if (this.queue.shared) await this.queue.submit(execution.id);
      else void this.drive(execution.id, exclusive);
    }
  }

  /**
   * Another replica took an execution over (this one was thought dead): stop following
   * it. A cancel request stored while the bus could not deliver it is honoured here.
   */
  private async letGoOfLost(): Promise<void> {
    const ids = [...this.running.keys()];
    if (!ids.length) return;
    const { owned, cancelRequested } = await this.repo.ownedBy(ids, this.config.replicaId);
    for (const id of ids) {
      const entry = this.running.get(id);
      if (!entry || entry.detached) continue;
      if (!owned.has(id)) {
        this.logger.warn({
          msg: 'execution taken over by another replica; letting go of it',
          executionId: id,
        });
        this.detach(entry);
      } else if (cancelRequested.has(id) && !entry.cancelled) {
        this.cancel(id);
      }
    }
  }

  /** Owners quiet since before this are stale (`exclusive`: alone on SQLite, all are). */
  private staleBefore(exclusive: boolean): number {
    if (exclusive) return Number.MAX_SAFE_INTEGER;
    return Date.now() - this.config.executor.ownerStaleSeconds * 1000;
  }

  /**
   * Drives one execution to its end (or until this replica lets go of it): claims it,
   * then starts, probes or re-attaches each unfinished target.
   */
  drive(id: string, exclusive = false): Promise<DriveResult> {
    const current = this.driving.get(id);
    if (current) return current;
    const p = this.driveOnce(id, exclusive).finally(() => this.driving.delete(id));
    this.driving.set(id, p);
    return p;
  }

  private async driveOnce(id: string, exclusive: boolean): Promise<DriveResult> {
    const here = this.running.get(id);
    if (here) {
      await here.done;
      return here.detached ? 'handed_over' : 'done';
    }
    if (this.handingOver) return 'handed_over';
    if (this.draining) return 'busy';
    const fresh = this.fresh.get(id);
    this.fresh.delete(id);
    // A plan made here for this process is ours from creation; anything else is claimed.
    if (fresh?.execution.ownerId !== this.config.replicaId) {
      const staleBefore = this.staleBefore(exclusive);
      if (!(await this.repo.claim(id, this.config.replicaId, Date.now(), staleBefore))) {
        const found = await this.repo.find(id);
        return found && !found.execution.finishedAt ? 'busy' : 'done';
      }
    }
    const plan = fresh ?? (await this.load(id));
    if (!plan) return 'done';
    const entry = this.track(plan, (e) => this.run(e));
    await entry.done;
    return entry.detached ? 'handed_over' : 'done';
  }

  /**
   * An execution another process started (it restarted, died or let go): targets that
   * had started are re-attached (or probed), the rest start from the sealed job. Without
   * one (stored before jobs were kept), targets that never reached their server are
   * closed as orchestrator_restarted. Null when nothing is left to drive.
   */
  private async load(id: string): Promise<ExecutionPlan | null> {
    const found = await this.repo.find(id);
    if (!found || found.execution.finishedAt) return null;
    const { execution, targets } = found;
    const { seq, logSeq } = await this.storedEvents.lastSeqs(id);
    this.events.open(id, seq, logSeq);
    const job = await this.openStoredJob(id);
    const now = Date.now();
    const left: TargetPlan[] = [];
    const ended: TargetStatus[] = [];
    let priorFailures = 0;
    /** The targets that had failed before this take-over (for their batches' limits). */
    const failedBefore = new Set<string>();
    for (const t of targets) {
      if (isTerminal(t.status)) {
        if (isFailure(t.status)) {
          priorFailures++;
          failedBefore.add(t.id);
        }
        ended.push(t.status);
        continue;
      }
      if (t.status !== 'running' && !job) {
        await this.closeRestarted(id, t, now);
        priorFailures++;
        failedBefore.add(t.id);
        ended.push('failed');
        continue;
      }
      left.push({
        targetId: t.id,
        position: t.position,
        serverId: t.serverId,
        serverName: t.serverName,
        batch: t.batch,
        baseDir: await this.servers.baseDirOfServer(t.serverId).catch(() => ''),
        endpoint: () => this.servers.getEndpoint(t.serverId),
        resume:
          t.status === 'queued'
            ? undefined
            : {
                ...(t.status === 'running'
                  ? { how: 'attach' as const, startedAt: t.startedAt ?? now }
                  : { how: 'probe' as const }),
                helperMode: t.helperMode,
                tunnelPort: t.tunnelPort,
                tunnelSocket: t.tunnelSocket,
                results: { output: t.output, condition: t.condition },
              },
      });
    }
    if (!left.length) {
      await this.finalize(id, execution.cancelRequestedAt !== null, now);
      this.logger.warn({
        msg: 'execution closed: nothing left to re-attach or start',
        executionId: id,
      });
      return null;
    }
    const resumed = left.filter((t) => t.resume).length;
    this.logger.warn({
      msg: `taking over ${resumed} started and ${left.length - resumed} queued target(s)`,
      executionId: id,
    });
    const r = execution.request;
    return {
      execution,
      targets: left,
      script: job?.script ?? { type: r.scriptType, content: '' },
      env: job?.env ?? {},
      input: job?.input ?? null,
      timeoutSeconds: r.timeoutSeconds,
      helperMode: r.helperMode,
      become: r.become ?? null,
      concurrency: r.concurrency,
      maxErrors: resolveMaxErrors(r.maxErrors, targets.length),
      failFast: r.failFast,
      batch: batchPlan(
        r.batch,
        targets.map((t) => t.batch),
        targets.map((t) => ({
          failed: failedBefore.has(t.id),
          finishedAt: isTerminal(t.status) ? t.finishedAt : null,
        })),
      ),
      priorFailures,
      ended,
    };
  }

  /** The stored job of an execution, opened; null when none is stored (or it does not open). */
  async openStoredJob(id: string): Promise<SealedJob | null> {
    const sealed = await this.repo.payloadOf(id);
    if (!sealed) return null;
    try {
      return openJob(this.box, id, sealed);
    } catch (e: any) {
      this.logger.error({ msg: `its stored job does not open (${e?.message})`, executionId: id });
      return null;
    }
  }

  private async closeRestarted(id: string, t: TargetRecord, now: number): Promise<void> {
    const patch: Partial<TargetRecord> = {
      status: 'failed',
      errorCode: 'orchestrator_restarted',
      errorMessage: 'the orchestrator restarted before this target reached its server',
      finishedAt: now,
    };
    await this.store(() => this.repo.updateTarget(t.id, patch));
    this.announce(id, t, { ...t, ...patch, status: 'failed' });
  }

  /** A target's final record is stored: its last status, its result event, the count. */
  private announce(
    id: string,
    target: Pick<TargetPlan, 'serverId' | 'serverName' | 'batch'>,
    record: Partial<TargetRecord> & { status: TargetStatus },
  ): void {
    const { serverId, serverName, batch } = target;
    const inBatch = batch != null ? { batch } : {};
    this.events.emit(id, statusEvent(target, record.status));
    this.events.emit(id, {
      type: 'result',
      serverId,
      data: { ...record, serverId, serverName, ...inBatch },
    });
    this.metrics.targets.inc({ status: record.status });
    if (record.errorCode === 'become_failed') this.metrics.becomeFailures.inc();
  }

  /** Runs `work` for an execution in the background, registered so cancel and drain see it. */
  private track(plan: ExecutionPlan, work: (entry: Running) => Promise<unknown>): Running {
    const entry: Running = {
      plan,
      runs: new Map(),
      cancelled: plan.execution.cancelRequestedAt !== null,
      budgetSpent: false,
      detached: false,
      done: Promise.resolve(),
      ended: new Map(),
      halted: null,
      wake: () => undefined,
    };
    this.running.set(plan.execution.id, entry);
    this.metrics.activeExecutions.inc();
    entry.done = work(entry)
      .then(() => undefined)
      .catch((e) => this.closeCrashed(entry, e))
      .finally(() => {
        this.running.delete(plan.execution.id);
        this.metrics.activeExecutions.dec();
      });
    return entry;
  }

  /** Cancels an execution running here; false when it is not running here. */
  cancel(executionId: string): boolean {
    const entry = this.running.get(executionId);
    if (!entry || entry.detached) return false;
    entry.cancelled = true;
    for (const run of entry.runs.values()) run.stop('cancelled');
    entry.wake();
    return true;
  }

  /**
   * Cancels an execution wherever it runs. The request is stored first, so it holds
   * while the execution changes hands; the replica driving it hears it on the bus. One
   * nobody has picked up yet is closed here. False when it has already ended.
   */
  async requestCancel(executionId: string): Promise<boolean> {
    if (!this.queue.shared) return this.cancel(executionId);
    if (!(await this.repo.requestCancel(executionId, Date.now()))) return false;
    if (this.cancel(executionId)) return true;
    await this.bus.publishCancel(executionId);
    if (await this.queue.removeWaiting(executionId)) void this.drive(executionId);
    return true;
  }

  /**
   * Lets go of everything running here without stopping it (SIGTERM in a cluster, or
   * `shutdown.handover`): sessions are dropped, events stored, ownership released, and the
   * runs go on under their lease until another replica (or the next start) re-attaches.
   */
  async handover(): Promise<void> {
    this.handingOver = true;
    await this.queue.stopConsuming();
    const entries = [...this.running.values()];
    for (const entry of entries) this.detach(entry);
    await Promise.all(entries.map((e) => e.done));
    await this.writer.flush();
    this.logger.log(`handed over ${entries.length} execution(s)`);
  }

  private detach(entry: Running): void {
    entry.detached = true;
    for (const run of entry.runs.values()) run.detach();
    entry.wake();
  }

  /**
   * Waits up to `graceMs` for running executions (and those being picked up), then cancels
   * what is left and waits for it. Work that arrives after the grace is left queued, for
   * the next start.
   */
  async drain(graceMs: number): Promise<void> {
    const all = () =>
      Promise.all(
        [...this.running.values(), ...this.driving.values()].map((r) => ('done' in r ? r.done : r)),
      );
    if (graceMs > 0) {
      await Promise.race([all(), new Promise((r) => setTimeout(r, graceMs).unref())]);
    }
    this.draining = true;
    for (const id of this.running.keys()) this.cancel(id);
    await all();
  }

  private async run(entry: Running): Promise<void> {
    const { plan } = entry;
    const id = plan.execution.id;
    // Payload first: the targets start while the execution's own `running` is stored.
    const stored = plan.execution.startedAt
      ? Promise.resolve()
      : this.store(() =>
          this.repo.updateExecution(id, { status: 'running', startedAt: Date.now() }),
        );
    stored.catch(() => undefined); // awaited below, before anything else of it is stored
    this.logger.log({ msg: 'execution started', executionId: id, targets: plan.targets.length });
    const perJob = new Semaphore(Math.max(1, plan.concurrency));
    let failures = plan.priorFailures;
    entry.budgetSpent = plan.maxErrors != null && failures > plan.maxErrors;
    // A cancelled target that may already run is still followed, to stop it remotely.
    const mayRun = (t: TargetPlan) => t.resume !== undefined;
    const refuse = (t: TargetPlan): 'cancelled' | 'skipped' | 'detached' | null => {
      if (entry.detached) return 'detached';
      if (mayRun(t)) return null;
      if (entry.cancelled) return 'cancelled';
      return entry.budgetSpent || entry.halted ? 'skipped' : null;
    };
    /** Runs (or skips) one target; true when it failed. */
    const runOne = async (target: TargetPlan): Promise<boolean> => {
      await perJob.acquire();
      try {
        let refused = refuse(target);
        if (refused) return this.skip(entry, target, refused);
        await this.global.acquire();
        try {
          refused = refuse(target);
          if (refused) return this.skip(entry, target, refused);
          const outcome = await this.runTarget(entry, target).catch((e) =>
            this.failInternally(entry, target, e),
          );
          if (outcome.detached || !isFailure(outcome.status)) return false;
          failures++;
          if (plan.maxErrors != null && failures > plan.maxErrors && !entry.budgetSpent) {
            entry.budgetSpent = true;
            if (plan.failFast) {
              for (const r of entry.runs.values()) r.stop('cancelled');
            }
          }
          return true;
        } finally {
          this.global.release();
        }
      } finally {
        perJob.release();
      }
    };
    /** When the batch before the current one ended (null: none, or it is unknown). */
    let lastEnded: number | null = null;
    for (const group of batchGroups(plan)) {
      // A batch a previous owner had started goes on at once; the next waits out its pause.
      if (lastEnded !== null && !group.targets.some(mayRun)) await this.pause(entry, lastEnded);
      // What already runs on its server goes first: it holds a slot of the limit anyway.
      const order = [...group.targets].sort((a, b) => rank(a) - rank(b) || a.position - b.position);
      const failed = (await Promise.all(order.map(runOne))).filter(Boolean).length;
      if (entry.detached) break;
      if (group.batch !== null && plan.batch) {
        const ranHere = group.targets.length > 0;
        await this.endBatch(entry, group.batch, failed, ranHere);
        lastEnded = ranHere ? Date.now() : (plan.batch.endedAt[group.batch - 1] ?? null);
      }
    }
    await stored;
    if (entry.detached) return this.letGo(id);
    await this.finalize(id, entry.cancelled, Date.now(), endedStatuses(entry), {
      reason: entry.halted,
      notify: plan.hasNotify,
    });
  }

  /**
   * A batch has ended (here, or before a take-over: `ranHere` false): with its earlier
   * failures, over its maxFailPercentage, the batches after it are skipped, and the
   * execution stores why.
   */
  private async endBatch(
    entry: Running,
    batch: number,
    failedHere: number,
    ranHere: boolean,
  ): Promise<void> {
    const b = entry.plan.batch!;
    const failures = (b.priorFailures[batch - 1] ?? 0) + failedHere;
    // maxErrors comes first: once its budget is spent, everything not started is skipped.
    const halt =
      entry.halted || entry.budgetSpent
        ? null
        : batchHalt(batch, failures, b.totals[batch - 1] ?? 0, b.maxFailPercentage);
    // A halt a previous owner had already stored (and counted) is not counted again.
    const known = halt !== null && entry.plan.execution.reason === halt;
    if (ranHere || (halt && !known)) {
      this.metrics.batches.inc({ outcome: halt ? 'halted' : 'passed' });
    }
    if (!halt) return;
    entry.halted = halt;
    if (known) return;
    const id = entry.plan.execution.id;
    await this.store(() => this.repo.updateExecution(id, { reason: halt }));
    this.logger.warn({ msg: 'batch over its failure limit', executionId: id, reason: halt });
  }

  /**
   * Waits until `batch.pauseSeconds` after the previous batch `ended` (also across a
   * take-over); a cancel or hand-over ends the wait at once.
   */
  private async pause(entry: Running, ended: number): Promise<void> {
    const until = ended + (entry.plan.batch?.pauseSeconds ?? 0) * 1000;
    // A timer may fire a millisecond before Date.now() reaches its end (seen in CI): the
    // next batch never starts before `until`, so a short wake-up waits the rest.
    for (;;) {
      const ms = until - Date.now();
      if (ms <= 0 || entry.cancelled || entry.detached || entry.halted || entry.budgetSpent) return;
      const woken = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), ms);
        entry.wake = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
      entry.wake = () => undefined;
      if (woken) return;
    }
  }

  /** After a hand-over: everything emitted is stored, and any replica may claim it at once. */
  private async letGo(id: string): Promise<void> {
    await this.writer.flush();
    await this.store(() => this.repo.release(id, this.config.replicaId));
  }

  /** Closes a target that never started (false: it did not fail). */
  private async skip(
    entry: Running,
    target: TargetPlan,
    status: 'skipped' | 'cancelled' | 'detached',
  ): Promise<false> {
    if (status === 'detached') return false; // left queued for whoever takes it over
    const id = entry.plan.execution.id;
    // Skipped by the error budget: no error, as ever; by a batch over its limit: why.
    const why =
      status === 'skipped' && entry.halted && !entry.budgetSpent
        ? { errorCode: 'batch_failed', errorMessage: entry.halted }
        : {};
    await this.store(() =>
      this.repo.updateTarget(target.targetId, { status, finishedAt: Date.now(), ...why }),
    );
    entry.ended.set(target.targetId, status);
    this.events.emit(id, statusEvent(target, status));
    this.metrics.targets.inc({ status });
    return false;
  }

  private async runTarget(entry: Running, target: TargetPlan): Promise<TargetOutcome> {
    const id = entry.plan.execution.id;
    const exec = this.config.executor;
    const run = new TargetRun(
      {
        pool: this.pool,
        runnerCache: this.runnerCache,
        runnerChannels: this.runnerChannels,
        // A fan-out's next standbys once it has ended (not one by one while it runs).
        refillAfter: entry.plan.targets.length > 1 ? entry.done : undefined,
        helpers: this.helpers,
        limits: {
          capBytes: exec.outputCapBytes,
          maxLineBytes: exec.maxLineBytes,
          killGraceSeconds: exec.killGraceSeconds,
          maxProcesses: exec.maxProcesses,
          collectTimeoutMs: exec.collectTimeoutSeconds * 1000,
          channelOpenRetry: this.config.ssh.channelOpenRetry,
          leaseSeconds: this.config.runner.leaseSeconds,
          heartbeatMs: this.config.runner.heartbeatSeconds * 1000,
          reattachBackoff: this.config.runner.reattachBackoff,
        },
        replicaId: this.config.replicaId,
        setStatus: async (status: TargetStatus, patch = {}, how = {}) => {
          if (how.store !== false) {
            await this.store(() => this.repo.updateTarget(target.targetId, { ...patch, status }));
          }
          if (how.announce !== false) this.events.emit(id, statusEvent(target, status));
        },
        log: (stream, text, offset) => {
          this.events.emit(id, { type: 'log', serverId: target.serverId, stream, text, offset });
        },
        storedOffsets: async () => {
          await this.writer.flush();
          return this.storedEvents.resumeOffsets(id, target.serverId);
        },
      },
      entry.plan,
      target,
    );
    entry.runs.set(target.targetId, run);
    if (entry.cancelled) run.stop('cancelled');
    const outcome = await this.begin(entry, run, target);
    entry.runs.delete(target.targetId);
    if (outcome.detached) return outcome;

    const record: Partial<TargetRecord> = {
      status: outcome.status,
      exitCode: outcome.exitCode,
      signal: outcome.signal,
      errorCode: outcome.error?.code ?? null,
      errorMessage: outcome.error?.message ?? null,
      helperMode: outcome.helperMode,
      fallbackReason: outcome.fallbackReason,
      output: outcome.output,
      condition: outcome.condition,
      truncated: outcome.truncated,
      startedAt: outcome.startedAt,
      finishedAt: outcome.finishedAt,
      phases: outcome.phases,
      replicaId: this.config.replicaId,
    };
    if (outcome.error) {
      this.events.emit(id, {
        type: 'log',
        serverId: target.serverId,
        stream: 'system',
        text: `${outcome.error.code}: ${outcome.error.message}`,
      });
    }
    await this.store(() => this.repo.updateTarget(target.targetId, record));
    entry.ended.set(target.targetId, outcome.status);
    this.announce(id, target, { ...record, status: outcome.status });
    // A target that did not succeed is worth a look; cancelled and skipped ones were asked for.
    const failed = outcome.status === 'failed' || outcome.status === 'timed_out';
    this.logger[failed ? 'warn' : 'log']({
      msg: 'target finished',
      executionId: id,
      serverId: target.serverId,
      targetId: target.targetId,
      status: outcome.status,
      exitCode: outcome.exitCode,
      errorCode: outcome.error?.code,
      helperMode: outcome.helperMode,
      durationMs: outcome.finishedAt - outcome.startedAt,
    });
    for (const [phase, ms] of Object.entries(outcome.phases)) {
      if (ms != null)
        this.metrics.phaseDuration.observe({ phase: phase.replace(/Ms$/, '') }, ms / 1000);
    }
    return outcome;
  }

  /**
   * The bookkeeping around one target failed (not its script, not its server): the
   * target ends `failed` / `internal_error`, with its events, and the others go on.
   */
  private async failInternally(
    entry: Running,
    target: Pick<TargetPlan, 'targetId' | 'serverId' | 'serverName' | 'batch'>,
    e: unknown,
  ): Promise<Pick<TargetOutcome, 'status' | 'detached'>> {
    entry.runs.get(target.targetId)?.stop('cancelled');
    entry.runs.delete(target.targetId);
    const id = entry.plan.execution.id;
    const message = `internal error: ${(e as Error)?.message ?? e}`.slice(0, 500);
    this.logger.error({
      msg: `target failed internally: ${(e as Error)?.stack ?? e}`,
      executionId: id,
      serverId: target.serverId,
      targetId: target.targetId,
    });
    const record: Partial<TargetRecord> & { status: TargetStatus } = {
      status: 'failed',
      errorCode: 'internal_error',
      errorMessage: message,
      output: null,
      finishedAt: Date.now(),
      replicaId: this.config.replicaId,
    };
    try {
      await this.store(() => this.repo.updateTarget(target.targetId, record));
    } catch (again: any) {
      this.logger.error({
        msg: `even the failure could not be stored: ${again?.message}`,
        executionId: id,
        serverId: target.serverId,
        targetId: target.targetId,
      });
    }
    entry.ended.set(target.targetId, 'failed');
    this.events.emit(id, {
      type: 'log',
      serverId: target.serverId,
      stream: 'system',
      text: message,
    });
    this.announce(id, target, record);
    return { status: 'failed', detached: false };
  }

  /**
   * Driving the execution itself failed: every target not finished yet ends
   * `internal_error`, and the execution still gets its summary and end.
   */
  private async closeCrashed(entry: Running, e: unknown): Promise<void> {
    const id = entry.plan.execution.id;
    this.logger.error({ msg: `execution crashed: ${(e as Error)?.stack ?? e}`, executionId: id });
    if (entry.detached) return;
    try {
      for (const t of await this.repo.unfinishedTargets(id)) {
        const target = {
          targetId: t.id,
          serverId: t.serverId,
          serverName: t.serverName,
          batch: t.batch,
        };
        await this.failInternally(entry, target, e);
      }
      await this.finalize(id, entry.cancelled, Date.now());
    } catch (again: any) {
      this.logger.error({
        msg: `execution could not be closed after a crash: ${again?.message}`,
        executionId: id,
      });
    }
  }

  /** Starts the target, or goes on with what a previous owner started. */
  private async begin(entry: Running, run: TargetRun, target: TargetPlan): Promise<TargetOutcome> {
    const resume = target.resume;
    if (!resume) return run.run();
    if (resume.how === 'probe') return run.run(resume);
    const from = await this.storedEvents.resumeOffsets(entry.plan.execution.id, target.serverId);
    return run.resume(from, resume);
  }

  /** A write of the execution's records, riding out an outage or a busy database (status.writeRetry). */
  private store<T>(write: () => Promise<T>): Promise<T> {
    return retry(this.config.status.writeRetry, write, isTransientWriteError);
  }

  /**
   * Aggregates, makes sure every event is stored, then publishes the final status. With
   * `known` (every target's final status, and when the execution was created) nothing is
   * read back: one write of the events and one of the execution.
   */
  private async finalize(
    id: string,
    cancelledByCaller: boolean,
    now: number,
    known?: { statuses: TargetStatus[]; createdAt: number },
    /** Why the rest were skipped (a batch halt); whether it has a notification (unknown: absent). */
    end: { reason?: string | null; notify?: boolean } = {},
  ): Promise<void> {
    let ended = known;
    if (!ended) {
      const found = await this.store(() => this.repo.find(id));
      if (!found) return;
      ended = {
        statuses: found.targets.map((t) => t.status),
        createdAt: found.execution.createdAt,
      };
    }
    const summary = summarize(ended.statuses);
    const status = executionStatus(summary, cancelledByCaller);
    const why = end.reason ? { reason: end.reason } : {};
    this.events.emit(id, { type: 'summary', status, data: { ...summary, ...why } });
    this.events.emit(id, { type: 'end' });
    await this.writer.flush();
    // The sealed job stays for a rerun (POST /v1/executions/:id/rerun) unless told not to.
    const clear = this.config.executor.keepJobForRerun ? {} : { payload: null };
    await this.store(() => this.repo.updateExecution(id, { status, finishedAt: now, ...clear }));
    // sent beside, never awaited here; the notifier's poll finds it too, this is sooner
    if (end.notify !== false) this.notifications?.executionEnded();
    this.metrics.executions.inc({ status });
    this.logger.log({ msg: 'execution finished', executionId: id, status, ...summary });
    this.metrics.executionDuration.observe((now - ended.createdAt) / 1000);
  }
}

/**
 * Every target's final status when all of the plan's ended here (with those that had
 * ended before it was made); otherwise undefined, and finalize reads them back.
 */
function endedStatuses(
  entry: Running,
): { statuses: TargetStatus[]; createdAt: number } | undefined {
  const { plan } = entry;
  if (plan.ended === undefined) return undefined;
  if (plan.targets.some((t) => !entry.ended.has(t.targetId))) return undefined;
  return {
    statuses: [...(plan.ended ?? []), ...plan.targets.map((t) => entry.ended.get(t.targetId)!)],
    createdAt: plan.execution.createdAt,
  };
}

/** Running targets first, then those that may have started, then the queued ones. */
function rank(t: TargetPlan): number {
  if (!t.resume) return 2;
  return t.resume.how === 'attach' ? 0 : 1;
}

/** A target's `status` event; with its batch number when the job runs in batches. */
function statusEvent(
  target: Pick<TargetPlan, 'serverId' | 'batch'>,
  status: TargetStatus,
): EmittedEvent {
  const { serverId, batch } = target;
  return { type: 'status', serverId, status, ...(batch != null ? { data: { batch } } : {}) };
}

/**
 * The plan's targets by batch, in batch order (every batch of the execution, also those
 * with nothing left to run here after a take-over); one group without batches.
 */
function batchGroups(plan: ExecutionPlan): { batch: number | null; targets: TargetPlan[] }[] {
  if (!plan.batch) return [{ batch: null, targets: plan.targets }];
  const groups = plan.batch.totals.map((_, i) => ({ batch: i + 1, targets: [] as TargetPlan[] }));
  for (const t of plan.targets) groups[(t.batch ?? 1) - 1]?.targets.push(t);
  return groups;
}
