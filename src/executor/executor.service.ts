import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { Semaphore } from '../common/semaphore';
import { AppConfig } from '../config/app-config';
import { executionStatus, summarize } from '../executions/aggregate';
import type { TargetStatus } from '../executions/statuses';
import { MetricsService } from '../metrics/metrics.service';
import type { TargetRecord } from '../executions/records';
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
export class ExecutorService implements OnModuleInit {
  private readonly logger = new Logger(ExecutorService.name);
  private readonly running = new Map<string, Running>();
  private readonly global: Semaphore;
  private readonly runnerChannels: RunnerChannels;

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
  ) {
    this.global = new Semaphore(config.executor.globalConcurrency);
    this.runnerChannels = new RunnerChannels(
      config.executor.prewarmRunner,
      config.ssh.channelOpenRetry,
    );
  }

  /** Executions a previous process left in flight can never finish: close them now. */
  async onModuleInit(): Promise<void> {
    for (const execution of await this.repo.unfinished()) {
      const { seq, logSeq } = await this.storedEvents.lastSeqs(execution.id);
      this.events.open(execution.id, seq, logSeq);
      const now = Date.now();
      for (const t of await this.repo.unfinishedTargets(execution.id)) {
        const patch: Partial<TargetRecord> = {
          status: 'failed',
          errorCode: 'orchestrator_restarted',
          errorMessage: 'the orchestrator restarted while this target was in flight',
          finishedAt: now,
        };
        await this.repo.updateTarget(t.id, patch);
        this.events.emit(execution.id, { type: 'status', serverId: t.serverId, status: 'failed' });
      }
      await this.finalize(execution.id, false, now);
      this.logger.warn(`execution ${execution.id} closed as orchestrator_restarted`);
    }
  }

  /** Starts an execution in the background. */
  start(plan: ExecutionPlan): void {
    const entry: Running = {
      plan,
      runs: new Map(),
      cancelled: false,
      budgetSpent: false,
      done: Promise.resolve(),
    };
    this.running.set(plan.execution.id, entry);
    this.metrics.activeExecutions.inc();
    this.events.open(plan.execution.id);
    entry.done = this.run(entry)
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

  private async runTarget(entry: Running, target: TargetPlan): Promise<TargetOutcome> {
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
        },
        setStatus: async (status: TargetStatus, patch = {}) => {
          await this.repo.updateTarget(target.targetId, { ...patch, status });
          this.events.emit(id, { type: 'status', serverId: target.serverId, status });
        },
        log: (stream, text) => {
          this.events.emit(id, { type: 'log', serverId: target.serverId, stream, text });
        },
      },
      entry.plan,
      target,
    );
    entry.runs.set(target.targetId, run);
    const outcome = await run.run();
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
