import {
  BadRequestException,
  ConflictException,
  Injectable,
  NotFoundException,
  PayloadTooLargeException,
  ServiceUnavailableException,
  UnprocessableEntityException,
} from '@nestjs/common';
import { createHash } from 'node:crypto';
import { isUuid } from '../common/uuid';
import { AppConfig } from '../config/app-config';
import { newExecution, newTarget } from '../executions/execution-factory';
import { resolveMaxErrors } from '../executions/max-errors';
import { executionView, ExecutionView } from '../executions/execution-view';
import type { ExecutionPlan } from '../executor/execution-plan';
import type { Become } from '../executions/request';
import { ExecutorService } from '../executor/executor.service';
import type { ExecutionEventRecord, ExecutionRecord } from '../executions/records';
import { ExecutionEventsRepository } from '../persistence/execution-events.repository';
import { ExecutionsRepository } from '../persistence/executions.repository';
import { ServersService } from '../servers/servers.service';
import { FINAL_EXECUTION_STATUSES, type ExecutionStatus } from '../executions/statuses';
import { ExecutionEventsService } from '../status/execution-events.service';
import { CreateJobDto } from './dto/create-job.dto';
import { DEFAULT_LIST_LIMIT, ListExecutionsQuery, LogsQuery } from './dto/list-query.dto';
import { decodeCursor, encodeCursor } from './execution-cursor';

/** One page of GET /v1/executions, newest first. */
export interface ExecutionPage {
  items: ExecutionView[];
  /** null on the last page. */
  nextCursor: string | null;
}

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
    if (!this.accepting) throw new ServiceUnavailableException('the service is shutting down');
    let idempotencyKey: string | undefined;
    const requestHash = sha256(canonicalJson(dto));
    if (key !== undefined) {
      if (!/^[\x21-\x7e]{1,200}$/.test(key)) {
        throw new BadRequestException('Idempotency-Key must be 1-200 visible ASCII characters');
      }
      idempotencyKey = `${scope}.${sha256(key)}`;
      const existing = await this.repo.findByIdempotencyKey(idempotencyKey);
      if (existing) return this.replay(existing, requestHash);
    }
    const { scriptBytes, env, timeoutSeconds } = this.checkLimits(dto);
    const { serverIds = [], tags = [] } = dto.targets;
    if (!serverIds.length && !tags.length) {
      throw new BadRequestException('targets must name at least one server id or tag');
    }
    const servers = await this.servers.findByIdsAndTags({ serverIds, tags });
    if (!servers.length) {
      throw new BadRequestException(`no server carries any of the tags ${tags.join(', ')}`);
    }

    const helperMode = dto.helperMode ?? 'auto';
    const become: Become | null = dto.become
      ? { user: dto.become.user ?? 'root', method: dto.become.method }
      : null;
    const concurrency = dto.concurrency ?? this.config.executor.defaultConcurrency;
    const execution = newExecution({
      name: dto.name,
      jobId: dto.jobId,
      eventId: dto.eventId,
      userId: dto.userId,
      idempotencyKey,
      // Alone, the accepting process drives it; with a shared queue, whoever picks it up.
      ownerId: this.config.queue.redisUrl ? undefined : this.config.replicaId,
      requestHash,
      request: {
        scriptType: dto.script.type,
        scriptBytes,
        envNames: Object.keys(env),
        timeoutSeconds,
        helperMode,
        become,
        concurrency,
        maxErrors: dto.maxErrors ?? null,
        failFast: dto.failFast ?? false,
        targets: { serverIds, tags },
      },
    });
    const targets = servers.map((s, position) => newTarget(execution.id, position, s));
    const job = {
      script: { type: dto.script.type, content: dto.script.content },
      env,
      input: dto.input ?? null,
    };
    try {
      await this.repo.create(execution, targets, this.executor.seal(execution.id, job));
    } catch (e) {
      // Two identical retries raced: the unique key lets exactly one through.
      if (idempotencyKey) {
        const existing = await this.repo.findByIdempotencyKey(idempotencyKey);
        if (existing) return this.replay(existing, requestHash);
      }
      throw e;
    }

    const plan: ExecutionPlan = {
      execution,
      targets: servers.map((s, i) => ({
        targetId: targets[i].id,
        position: i,
        serverId: s.id,
        serverName: s.name,
        baseDir: this.servers.baseDirOf(s),
        endpoint: () => this.servers.getEndpoint(s.id),
      })),
      ...job,
      timeoutSeconds,
      helperMode,
      become,
      concurrency,
      maxErrors: resolveMaxErrors(dto.maxErrors, servers.length),
      failFast: dto.failFast ?? false,
      priorFailures: 0,
      ended: [],
    };
    await this.executor.submit(plan);
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
    const rows = await this.repo.list({ status: q.status, limit, cursor });
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
