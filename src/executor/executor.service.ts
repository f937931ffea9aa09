import { Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { Semaphore } from '../common/semaphore';
import { AppConfig } from '../config/app-config';
import { executionStatus, summarize } from '../executions/aggregate';
import type { TargetStatus } from '../executions/statuses';
import { MetricsService } from '../metrics/metrics.service';
import type { ExecutionRecord, TargetRecord } from '../executions/records';
import { resolveMaxErrors } from '../executions/max-errors';
import { ServersService } from '../servers/servers.service';
import { ExecutionEventsRepository } from '../persistence/execution-events.repository';
import { ExecutionsRepository } from '../persistence/executions.repository';
import { RunnerCacheService } from '../runner-cache/runner-cache.service';
import { RuntimeHelpersService } from '../runtime-helpers/runtime-helpers.service';
import { SshPool } from '../ssh/ssh-pool.service';
import { EventWriter } from '../status/event-writer.service';
import { ExecutionEventsService } from '../status/execution-events.service';
import type { ExecutionPlan, TargetPlan } from './execution-plan';
import { RunnerChannels } from '../runner/runner-channels';
import { TargetOutcome, TargetRun } from './target-run';

interface Running {
  plan: ExecutionPlan;
  runs: Map<string, TargetRun>;
  cancelled: boolean;
  /** Set once the error budget is spent: targets not yet started are skipped. */
  budgetSpent: boolean;
  done: Promise<void>;
}

/**
 * Runs executions: fans out over targets with a per-job and a global concurrency limit,
 * applies the error budget, aggregates, and persists. It only emits events; it knows
 * nothing of websockets.
 */
@Injectable()
export class ExecutorService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(ExecutorService.name);
  private readonly running = new Map<string, Running>();
  private readonly global: Semaphore;
  private readonly runnerChannels: RunnerChannels;
  private ticker: NodeJS.Timeout | null = null;
  private ticking = false;

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
  ) {
    this.global = new Semaphore(config.executor.globalConcurrency);
    this.runnerChannels = new RunnerChannels(
      config.executor.prewarmRunner,
      config.ssh.channelOpenRetry,
    );
  }

  /**
   * Takes over what a previous process left in flight (on SQLite, which one process
   * holds at a time, everything unfinished; elsewhere what this replica owned or what
   * has gone stale), then keeps this replica's heartbeat and sweeps for stale owners.
   */
  async onModuleInit(): Promise<void> {
    await this.takeOver(this.config.database.url.startsWith('sqlite:'));
    const every = this.config.executor.ownerHeartbeatSeconds * 1000;
    this.ticker = setInterval(() => void this.tick(), every);
    this.ticker.unref();
  }

  onModuleDestroy(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = null;
  }

  private async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      await this.repo.heartbeat(this.config.replicaId, Date.now());
      await this.takeOver(false);
    } catch (e: any) {
      this.logger.warn(`owner heartbeat or take-over failed: ${e?.message ?? e}`);
    } finally {
      this.ticking = false;
    }
  }

  private async takeOver(exclusive: boolean): Promise<void> {
    const now = Date.now();
    const staleBefore = exclusive
      ? Number.MAX_SAFE_INTEGER
      : now - this.config.executor.ownerStaleSeconds * 1000;
    for (const execution of await this.repo.unfinished()) {
      if (this.running.has(execution.id)) continue;
      if (execution.ownerId === this.config.replicaId && execution.status === 'queued') continue;
      if (!(await this.repo.claim(execution.id, this.config.replicaId, now, staleBefore))) continue;
      await this.resume(execution);
    }
  }

  /**
   * Continues an execution another process started: running targets are re-attached
   * from the offsets of their stored log entries; targets that never reached the server
   * cannot be started (script and env lived only in that process) and are closed as
   * orchestrator_restarted.
   */
  private async resume(execution: ExecutionRecord): Promise<void> {
    const id = execution.id;
    const { seq, logSeq } = await this.storedEvents.lastSeqs(id);
    this.events.open(id, seq, logSeq);
    const now = Date.now();
    const attachable: TargetRecord[] = [];
    for (const t of await this.repo.unfinishedTargets(id)) {
      if (t.status === 'running') attachable.push(t);
      else await this.closeRestarted(id, t, now);
    }
    if (!attachable.length) {
      await this.finalize(id, false, now);
      this.logger.warn(`execution ${id} closed as orchestrator_restarted`);
      return;
    }
    this.logger.warn(`execution ${id}: re-attaching ${attachable.length} target(s)`);
    const r = execution.request;
    const baseDirs = await Promise.all(
      attachable.map((t) => this.servers.baseDirOfServer(t.serverId).catch(() => '')),
    );
    const plan: ExecutionPlan = {
      execution,
      targets: attachable.map((t, i) => ({
        targetId: t.id,
        position: t.position,
        serverId: t.serverId,
        serverName: t.serverName,
        baseDir: baseDirs[i],
        endpoint: () => this.servers.getEndpoint(t.serverId),
      })),
      script: { type: r.scriptType, content: '' },
      env: {},
      input: null,
      timeoutSeconds: r.timeoutSeconds,
      helperMode: r.helperMode,
      concurrency: r.concurrency,
      maxErrors: resolveMaxErrors(r.maxErrors, attachable.length),
      failFast: r.failFast,
    };
    this.track(plan, (entry) =>
      Promise.all(
        plan.targets.map(async (target, i) => {
          const t = attachable[i];
          const from = await this.storedEvents.resumeOffsets(id, t.serverId);
          await this.runTarget(entry, target, (run) =>
            run.resume(from, t.helperMode, t.startedAt ?? now),
          );
        }),
      ).then(() => this.finalize(id, entry.cancelled, Date.now())),
    );
  }

  private async closeRestarted(id: string, t: TargetRecord, now: number): Promise<void> {
    const patch: Partial<TargetRecord> = {
      status: 'failed',
      errorCode: 'orchestrator_restarted',
      errorMessage: 'the orchestrator restarted before this target reached its server',
      finishedAt: now,
    };
    await this.repo.updateTarget(t.id, patch);
    this.events.emit(id, { type: 'status', serverId: t.serverId, status: 'failed' });
    this.events.emit(id, {
      type: 'result',
      serverId: t.serverId,
      data: { ...t, ...patch, serverId: t.serverId, serverName: t.serverName },
    });
    this.metrics.targets.inc({ status: 'failed' });
  }

  /** Starts an execution in the background. */
  start(plan: ExecutionPlan): void {
    this.events.open(plan.execution.id);
    this.track(plan, (entry) => this.run(entry));
  }

  /** Runs `work` for an execution in the background, registered so cancel and drain see it. */
  private track(plan: ExecutionPlan, work: (entry: Running) => Promise<unknown>): void {
    const entry: Running = {
      plan,
      runs: new Map(),
      cancelled: false,
      budgetSpent: false,
      done: Promise.resolve(),
    };
    this.running.set(plan.execution.id, entry);
    this.metrics.activeExecutions.inc();
    entry.done = work(entry)
      .then(() => undefined)
      .catch((e) => this.logger.error(`execution ${plan.execution.id} crashed: ${e?.stack ?? e}`))
      .finally(() => {
        this.running.delete(plan.execution.id);
        this.metrics.activeExecutions.dec();
      });
  }

  /** Cancels a running execution; false when it is not running here. */
  cancel(executionId: string): boolean {
    const entry = this.running.get(executionId);
    if (!entry) return false;
    entry.cancelled = true;
    for (const run of entry.runs.values()) run.stop('cancelled');
    return true;
  }

  /** Waits up to `graceMs` for running executions, then cancels what is left and waits for it. */
  async drain(graceMs: number): Promise<void> {
    const all = () => Promise.all([...this.running.values()].map((r) => r.done));
    if (graceMs > 0) {
      await Promise.race([all(), new Promise((r) => setTimeout(r, graceMs).unref())]);
    }
    for (const id of this.running.keys()) this.cancel(id);
    await all();
  }

  private async run(entry: Running): Promise<void> {
    const { plan } = entry;
    const id = plan.execution.id;
    await this.repo.updateExecution(id, { status: 'running', startedAt: Date.now() });
    this.logger.log({ msg: 'execution started', executionId: id, targets: plan.targets.length });
    const perJob = new Semaphore(Math.max(1, plan.concurrency));
    let failures = 0;
    await Promise.all(
      plan.targets.map(async (target) => {
        await perJob.acquire();
        try {
          if (entry.cancelled) return this.skip(entry, target, 'cancelled');
          if (entry.budgetSpent) return this.skip(entry, target, 'skipped');
          await this.global.acquire();
          try {
            if (entry.cancelled) return this.skip(entry, target, 'cancelled');
            if (entry.budgetSpent) return this.skip(entry, target, 'skipped');
            const outcome = await this.runTarget(entry, target);
            if (outcome.status !== 'succeeded' && outcome.status !== 'cancelled') {
              failures++;
              if (plan.maxErrors != null && failures > plan.maxErrors && !entry.budgetSpent) {
                entry.budgetSpent = true;
                if (plan.failFast) {
                  for (const r of entry.runs.values()) r.stop('cancelled');
                }
              }
            }
          } finally {
            this.global.release();
          }
        } finally {
          perJob.release();
        }
      }),
    );
    await this.finalize(id, entry.cancelled, Date.now());
  }

  private async skip(entry: Running, target: TargetPlan, status: 'skipped' | 'cancelled') {
    const id = entry.plan.execution.id;
    await this.repo.updateTarget(target.targetId, { status, finishedAt: Date.now() });
    this.events.emit(id, { type: 'status', serverId: target.serverId, status });
    this.metrics.targets.inc({ status });
  }

  private async runTarget(
    entry: Running,
    target: TargetPlan,
    how: (run: TargetRun) => Promise<TargetOutcome> = (run) => run.run(),
  ): Promise<TargetOutcome> {
    const id = entry.plan.execution.id;
    const exec = this.config.executor;
    const run = new TargetRun(
      {
        pool: this.pool,
        runnerCache: this.runnerCache,
        runnerChannels: this.runnerChannels,
        helpers: this.helpers,
        limits: {
          capBytes: exec.outputCapBytes,
          maxLineBytes: exec.maxLineBytes,
          killGraceSeconds: exec.killGraceSeconds,
          collectTimeoutMs: exec.collectTimeoutSeconds * 1000,
          leaseSeconds: this.config.runner.leaseSeconds,
          heartbeatMs: this.config.runner.heartbeatSeconds * 1000,
          reattachBackoff: this.config.runner.reattachBackoff,
        },
        replicaId: this.config.replicaId,
        setStatus: async (status: TargetStatus, patch = {}) => {
          await this.repo.updateTarget(target.targetId, { ...patch, status });
          this.events.emit(id, { type: 'status', serverId: target.serverId, status });
        },
        log: (stream, text, offset) => {
          this.events.emit(id, { type: 'log', serverId: target.serverId, stream, text, offset });
        },
      },
      entry.plan,
      target,
    );
    entry.runs.set(target.targetId, run);
    const outcome = await how(run);
    entry.runs.delete(target.targetId);

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
    await this.repo.updateTarget(target.targetId, record);
    this.events.emit(id, { type: 'status', serverId: target.serverId, status: outcome.status });
    this.events.emit(id, {
      type: 'result',
      serverId: target.serverId,
      data: { ...record, serverId: target.serverId, serverName: target.serverName },
    });
    this.metrics.targets.inc({ status: outcome.status });
    this.logger.log({
      msg: 'target finished',
      executionId: id,
      serverId: target.serverId,
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

  /** Aggregates, makes sure every event is stored, then publishes the final status. */
  private async finalize(id: string, cancelledByCaller: boolean, now: number): Promise<void> {
    const found = await this.repo.find(id);
    if (!found) return;
    const summary = summarize(found.targets.map((t) => t.status));
    const status = executionStatus(summary, cancelledByCaller);
    this.events.emit(id, { type: 'summary', status, data: { ...summary } });
    this.events.emit(id, { type: 'end' });
    await this.writer.flush();
    await this.repo.updateExecution(id, { status, finishedAt: now });
    this.metrics.executions.inc({ status });
    this.logger.log({ msg: 'execution finished', executionId: id, status, ...summary });
    this.metrics.executionDuration.observe((now - found.execution.createdAt) / 1000);
  }
}
