import {
  BadRequestException,
  ConflictException,
  Injectable,
  NotFoundException,
  Optional,
  PayloadTooLargeException,
  ServiceUnavailableException,
  UnprocessableEntityException,
} from '@nestjs/common';
import { createHash } from 'node:crypto';
import { setImmediate as afterThisTurn } from 'node:timers/promises';
import { prefixRange } from '../common/query-list';
import { isUuid } from '../common/uuid';
import { AppConfig } from '../config/app-config';
import { NewExecution, newExecution, newTarget } from '../executions/execution-factory';
import { resolveMaxErrors } from '../executions/max-errors';
import { batchNumbers } from '../executions/batches';
import { executionView, ExecutionView } from '../executions/execution-view';
import { batchPlan, type ExecutionPlan } from '../executor/execution-plan';
import type { SealedJob } from '../executor/sealed-job';
import { MetricsService } from '../metrics/metrics.service';
import type { ServerEntity } from '../persistence/entities';
import type { Become } from '../executions/request';
import { ExecutorService } from '../executor/executor.service';
import type { ExecutionEventRecord, ExecutionRecord } from '../executions/records';
import { ExecutionEventsRepository } from '../persistence/execution-events.repository';
import { ExecutionsRepository } from '../persistence/executions.repository';
import { NotificationsService } from '../notifications/notifications.service';
import type { NotifyDto } from '../notifications/notify.dto';
import { ServersService } from '../servers/servers.service';
import {
  FINAL_EXECUTION_STATUSES,
  type ExecutionStatus,
  type TargetStatus,
} from '../executions/statuses';
import { ExecutionEventsService } from '../status/execution-events.service';
import { CreateJobDto } from './dto/create-job.dto';
import { DEFAULT_LIST_LIMIT, ListExecutionsQuery, LogsQuery } from './dto/list-query.dto';
import { RerunDto } from './dto/rerun.dto';
import { decodeCursor, encodeCursor } from './execution-cursor';

/** One page of GET /v1/executions, newest first. */
export interface ExecutionPage {
  items: ExecutionView[];
  /** null on the last page. */
  nextCursor: string | null;
}

/** The target statuses `only: "failed"` re-runs (and `skipped` with includeSkipped). */
const RERUN_FAILED: readonly TargetStatus[] = ['failed', 'timed_out', 'cancelled'];

/** Turns a validated job request into an execution plan and hands it to the executor. */
@Injectable()
export class JobsService {
  private accepting = true;

  constructor(
    private readonly config: AppConfig,
    private readonly repo: ExecutionsRepository,
    private readonly servers: ServersService,
    private readonly executor: ExecutorService,
    private readonly events: ExecutionEventsRepository,
    private readonly feed: ExecutionEventsService,
    private readonly metrics: MetricsService,
    /** Absent only in unit specs that build the service by hand (they send no notify). */
    @Optional() private readonly notifications?: NotificationsService,
  ) {}

  /** Long-polls waiting now: a shutdown answers them at once (with the current view). */
  private readonly waiting = new Set<() => void>();

  /** Graceful shutdown: refuse new jobs from now on, and answer every long-poll. */
  stopAccepting(): void {
    this.accepting = false;
    for (const stop of this.waiting) stop();
  }

  /**
   * `idempotencyKey` is scoped to the caller (`scope`, a digest of its token) and bound to
   * the request it was first used with: the same key with another body is a 422.
   */
  async submit(dto: CreateJobDto, key?: string, scope = ''): Promise<ExecutionView> {
    this.assertAccepting();
    const requestHash = sha256(canonicalJson(dto));
    const idem = await this.idempotency(key, scope, requestHash);
    if (idem.replayed) return idem.replayed;
    const { scriptBytes, env, timeoutSeconds } = this.checkLimits(dto);
    this.notifications?.check(dto.notify);
    const { serverIds = [], tags = [] } = dto.targets;
    if (!serverIds.length && !tags.length) {
      throw new BadRequestException('targets must name at least one server id or tag');
    }
    const servers = await this.servers.findByIdsAndTags({ serverIds, tags });
    if (!servers.length) {
      throw new BadRequestException(`no server carries any of the tags ${tags.join(', ')}`);
    }
    const batch = dto.batch
      ? {
          size: dto.batch.size,
          maxFailPercentage: dto.batch.maxFailPercentage ?? null,
          pauseSeconds: dto.batch.pauseSeconds ?? 0,
        }
      : null;
    const become: Become | null = dto.become
      ? { user: dto.become.user ?? 'root', method: dto.become.method }
      : null;
    return this.start({
      name: dto.name,
      jobId: dto.jobId,
      eventId: dto.eventId,
      userId: dto.userId,
      idempotencyKey: idem.idempotencyKey,
      requestHash,
      request: {
        scriptType: dto.script.type,
        scriptBytes,
        envNames: Object.keys(env),
        timeoutSeconds,
        helperMode: dto.helperMode ?? 'auto',
        concurrency: dto.concurrency ?? this.config.executor.defaultConcurrency,
        become,
        maxErrors: dto.maxErrors ?? null,
        failFast: dto.failFast ?? false,
        ...(batch ? { batch } : {}),
        targets: { serverIds, tags },
      },
      servers,
      notify: dto.notify,
      job: {
        script: { type: dto.script.type, content: dto.script.content },
        env,
        input: dto.input ?? null,
      },
    });
  }

  /**
   * A new execution of an ended one's job (its stored sealed script, env and input, and
   * its timeout, helper mode, limits and labels) on the chosen targets' servers, linked by
   * `rerunOf`. 409 while it runs, when no target is chosen, or when its job was not kept;
   * a server deleted since is a 404 naming it, as in a job. Idempotency-Key as for a job.
   */
  async rerun(id: string, dto: RerunDto, key?: string, scope = ''): Promise<ExecutionView> {
    this.assertAccepting();
    const requestHash = sha256(canonicalJson({ rerunOf: id, ...dto }));
    const idem = await this.idempotency(key, scope, requestHash);
    if (idem.replayed) return idem.replayed;
    const found = isUuid(id) ? await this.repo.find(id) : null;
    if (!found) throw new NotFoundException(`execution ${id} not found`);
    const { execution: original, targets } = found;
    if (!FINAL_EXECUTION_STATUSES.includes(original.status)) {
      throw new ConflictException(
        `execution ${id} is still ${original.status}; re-run it once it has ended`,
      );
    }
    const failed = [...RERUN_FAILED, ...(dto.includeSkipped ? (['skipped'] as const) : [])];
    const chosen = dto.only === 'all' ? targets : targets.filter((t) => failed.includes(t.status));
    if (!chosen.length) {
      throw new ConflictException(
        `nothing to re-run: no target of execution ${id} is ${failed.join(', ')}`,
      );
    }
    const job = await this.executor.openStoredJob(id);
    if (!job) {
      throw new ConflictException(
        `execution ${id} can not be re-run: its job is no longer stored ` +
          '(it ended with executor.keepJobForRerun off, or before reruns were kept)',
      );
    }
    // the original's notification too, checked against today's allow list
    const notify = (await this.notifications?.notifyOf(id)) ?? null;
    this.notifications?.check(notify);
    const serverIds = chosen.map((t) => t.serverId);
    const servers = await this.servers.findByIdsAndTags({ serverIds });
    const view = await this.start({
      name: original.name ?? undefined,
      jobId: original.jobId ?? undefined,
      eventId: original.eventId ?? undefined,
      userId: original.userId ?? undefined,
      idempotencyKey: idem.idempotencyKey,
      requestHash,
      rerunOf: id,
      request: { ...original.request, targets: { serverIds } },
      servers,
      notify,
      job,
    });
    this.metrics.reruns.inc({ only: dto.only });
    return view;
  }

  private assertAccepting(): void {
    if (!this.accepting) throw new ServiceUnavailableException('the service is shutting down');
  }

  /** The scoped key to store (if any), or the execution a retry with it already made. */
  private async idempotency(
    key: string | undefined,
    scope: string,
    requestHash: string,
  ): Promise<{ idempotencyKey?: string; replayed?: ExecutionView }> {
    if (key === undefined) return {};
    if (!/^[\x21-\x7e]{1,200}$/.test(key)) {
      throw new BadRequestException('Idempotency-Key must be 1-200 visible ASCII characters');
    }
    const idempotencyKey = `${scope}.${sha256(key)}`;
    const existing = await this.repo.findByIdempotencyKey(idempotencyKey);
    return existing ? { replayed: await this.replay(existing, requestHash) } : { idempotencyKey };
  }

  /** Stores a new execution with its sealed job and hands its plan to the executor. */
  private async start(
    e: NewExecution & { servers: ServerEntity[]; job: SealedJob; notify?: NotifyDto | null },
  ): Promise<ExecutionView> {
    const { servers, job, request: r } = e;
    const execution = newExecution({
      ...e,
      // Alone, the accepting process drives it; with a shared queue, whoever picks it up.
      ownerId: this.config.queue.redisUrl ? undefined : this.config.replicaId,
    });
    const batch = r.batch ?? null;
    const batches = batchNumbers(batch, servers.length);
    const targets = servers.map((s, position) =>
      newTarget(execution.id, position, s, batches[position]),
    );
    try {
      const notify = this.notifications?.newRow(execution.id, e.notify);
      const sealed = this.executor.seal(execution.id, job);
      await this.repo.create(execution, targets, sealed, notify ? [notify] : []);
    } catch (err) {
      // Two identical retries raced: the unique key lets exactly one through.
      if (e.idempotencyKey) {
        const existing = await this.repo.findByIdempotencyKey(e.idempotencyKey);
        if (existing) return this.replay(existing, e.requestHash ?? '');
      }
      throw err;
    }

    const plan: ExecutionPlan = {
      execution,
      targets: servers.map((s, i) => ({
        targetId: targets[i].id,
        position: i,
        serverId: s.id,
        serverName: s.name,
        batch: batches[i],
        baseDir: this.servers.baseDirOf(s),
        endpoint: () => this.servers.getEndpoint(s.id),
      })),
      ...job,
      timeoutSeconds: r.timeoutSeconds,
      helperMode: r.helperMode,
      become: r.become ?? null,
      concurrency: r.concurrency,
      maxErrors: resolveMaxErrors(r.maxErrors, servers.length),
      failFast: r.failFast,
      batch: batchPlan(batch, batches),
      hasNotify: !!e.notify,
      priorFailures: 0,
      ended: [],
    };
    await this.executor.submit(plan);
    // Answered once the run's first steps have gone as far as they go without waiting (on
    // the warm path: the payload is written): the answer's write wakes the caller, who would
    // otherwise take the CPU the payload is waiting for.
    await afterThisTurn();
    return executionView(execution, targets);
  }

  /** A retried POST: the execution it made, if it is the same request. */
  private replay(existing: ExecutionRecord, requestHash: string): Promise<ExecutionView> {
    if (existing.requestHash !== null && existing.requestHash !== requestHash) {
      throw new UnprocessableEntityException(
        'Idempotency-Key was already used with a different request body',
      );
    }
    return this.view(existing.id);
  }

  async view(id: string): Promise<ExecutionView> {
    const found = isUuid(id) ? await this.repo.find(id) : null;
    if (!found) throw new NotFoundException(`execution ${id} not found`);
    return executionView(found.execution, found.targets);
  }

  /**
   * The long-poll: the view as soon as the execution has ended, or after `seconds` with
   * the view as it is then. Woken by the execution's `end` event (this replica's own, or
   * relayed from the one that drives it), never by polling. The final status is stored
   * just after `end` goes out; until it is, the `summary` event before it says it.
   */
  async waitForEnd(id: string, seconds: number): Promise<ExecutionView> {
    const isFinal = (status: string) =>
      FINAL_EXECUTION_STATUSES.includes(status as ExecutionStatus);
    let summary: ExecutionStatus | null = null;
    // The ts of the end, or null once the wait ran out (or a shutdown answered it).
    let finish: (endTs: number | null) => void = () => undefined;
    const over = new Promise<number | null>((resolve) => (finish = resolve));
    const sub = this.feed.feed$.subscribe((e) => {
      if (e.executionId !== id) return;
      if (e.type === 'summary' && e.status) summary = e.status as ExecutionStatus;
      if (e.type === 'end') finish(e.ts);
    });
    const giveUp = () => finish(null);
    const timer = setTimeout(giveUp, seconds * 1000);
    this.waiting.add(giveUp);
    if (!this.accepting) giveUp();
    try {
      const now = await this.view(id); // after subscribing: an end in between is not missed
      if (isFinal(now.status)) return now;
      const endTs = await over;
      const view = await this.view(id);
      const status = summary as ExecutionStatus | null;
      if (endTs === null || !status || isFinal(view.status)) return view;
      return { ...view, status, finishedAt: view.finishedAt ?? new Date(endTs).toISOString() };
    } finally {
      sub.unsubscribe();
      clearTimeout(timer);
      this.waiting.delete(giveUp);
    }
  }

  /** Newest first; `nextCursor` is set while a full page came back. */
  /** One page of an execution's log entries, in sequence order. */
  async logs(
    id: string,
    q: LogsQuery,
  ): Promise<{ execution: ExecutionView; entries: ExecutionEventRecord[] }> {
    const execution = await this.view(id);
    if (q.serverId && !execution.targets.some((t) => t.serverId === q.serverId)) {
      throw new BadRequestException(`server ${q.serverId} is not a target of execution ${id}`);
    }
    const entries = await this.events.logs(id, q.afterSeq ?? 0, q.limit ?? 1000, q.serverId);
    return { execution, entries };
  }

  async list(q: ListExecutionsQuery): Promise<ExecutionPage> {
    const limit = q.limit ?? DEFAULT_LIST_LIMIT;
    const cursor = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
    const createdAfter = q.createdAfter === undefined ? undefined : Date.parse(q.createdAfter);
    const createdBefore = q.createdBefore === undefined ? undefined : Date.parse(q.createdBefore);
    if (
      createdAfter !== undefined &&
      createdBefore !== undefined &&
      createdAfter >= createdBefore
    ) {
      throw new BadRequestException('createdAfter must be earlier than createdBefore');
    }
    const rows = await this.repo.list({
      status: q.status,
      serverId: q.serverId?.toLowerCase(),
      jobId: q.jobId,
      userId: q.userId,
      eventId: q.eventId,
      name: q.name === undefined ? undefined : prefixRange(q.name),
      createdAfter,
      createdBefore,
      limit,
      cursor,
    });
    const targets = await this.repo.targetsOf(rows.map((r) => r.id));
    const items = rows.map((r) =>
      executionView(
        r,
        targets.filter((t) => t.executionId === r.id),
      ),
    );
    const last = rows[rows.length - 1];
    return { items, nextCursor: rows.length === limit && last ? encodeCursor(last) : null };
  }

  async cancel(id: string): Promise<ExecutionView> {
    const current = await this.view(id);
    if (!(await this.executor.requestCancel(id))) {
      throw new ConflictException(`execution ${id} is already ${current.status}`);
    }
    return current;
  }

  /** The request limits (limits.*, executor.maxTimeoutSeconds) a validated DTO can still break. */
  private checkLimits(dto: CreateJobDto) {
    const limits = this.config.limits;
    const scriptBytes = Buffer.byteLength(dto.script.content);
    if (scriptBytes > limits.maxScriptBytes) {
      throw new PayloadTooLargeException(
        `script.content is ${scriptBytes} bytes; the limit is ${limits.maxScriptBytes}`,
      );
    }
    if (
      dto.input !== undefined &&
      Buffer.byteLength(JSON.stringify(dto.input)) > limits.maxInputBytes
    ) {
      throw new PayloadTooLargeException(`input is larger than ${limits.maxInputBytes} bytes`);
    }
    const env = dto.env ?? {};
    if (Object.keys(env).length > limits.maxEnvVars) {
      throw new BadRequestException(`env has more than ${limits.maxEnvVars} variables`);
    }
    const timeoutSeconds = dto.timeoutSeconds ?? this.config.executor.defaultTimeoutSeconds;
    if (timeoutSeconds > this.config.executor.maxTimeoutSeconds) {
      throw new BadRequestException(
        `timeoutSeconds must not be greater than ${this.config.executor.maxTimeoutSeconds}`,
      );
    }
    return { scriptBytes, env, timeoutSeconds };
  }
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** JSON with object keys sorted, so equal requests hash equally whatever their key order. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, v[k]]),
        )
      : v,
  );
}
