import {
  BadRequestException,
  Injectable,
  Logger,
  NotFoundException,
  OnModuleDestroy,
  OnModuleInit,
} from '@nestjs/common';
import { createHmac, randomUUID } from 'node:crypto';
import { backoffDelay } from '../common/backoff';
import { SecretBox } from '../common/secret-box';
import { isUuid } from '../common/uuid';
import { AppConfig } from '../config/app-config';
import { executionView } from '../executions/execution-view';
import { MetricsService } from '../metrics/metrics.service';
import type { NotificationEntity } from '../persistence/entities';
import { ExecutionsRepository } from '../persistence/executions.repository';
import { notifyUrlProblem, shownUrl } from './allow-list';
import { postOnce } from './deliver';
import type { ExecutionNotificationsView, NotifyDto } from './notify.dto';
import { NotificationsRepository } from './notifications.repository';

/** Attempts one replica has in flight at once. */
const MAX_IN_FLIGHT = 8;
/** Rows looked at per poll, per kind. */
const PAGE = 50;

const iso = (ms: number | null) => (ms == null ? null : new Date(ms).toISOString());

/**
 * Completion notifications. The row is stored with its execution (`waiting`); once the
 * execution has ended its body is fixed (`pending`), and each attempt is claimed in the
 * database first, so across replicas and restarts one replica sends each attempt and a
 * delivered notification is never sent again. Sending runs beside the executor, never in
 * its way: a receiver that is down costs the execution nothing.
 */
@Injectable()
export class NotificationsService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(NotificationsService.name);
  private readonly box: SecretBox;
  private timer: NodeJS.Timeout | null = null;
  private pumping = false;
  private again = false;
  private stopped = false;
  private readonly inFlight = new Map<string, { abort: AbortController; done: Promise<void> }>();

  constructor(
    private readonly config: AppConfig,
    private readonly repo: NotificationsRepository,
    private readonly executions: ExecutionsRepository,
    private readonly metrics: MetricsService,
  ) {
    this.box = new SecretBox(config.secrets.key);
  }

  onModuleInit(): void {
    this.timer = setInterval(() => this.kick(), this.config.notifications.pollIntervalMs);
    this.timer.unref();
    this.kick();
  }

  /** Stops polling and interrupts attempts in flight (recorded; the next start resumes). */
  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const f of this.inFlight.values()) f.abort.abort();
    await Promise.all([...this.inFlight.values()].map((f) => f.done));
  }

  /** Refuses a `notify` the configuration does not allow (before anything is stored). */
  check(notify: NotifyDto | null | undefined): void {
    if (!notify) return;
    const problem = notifyUrlProblem(notify.url, this.config.notifications.allowList);
    if (problem) throw new BadRequestException(problem);
  }

  /** The row to store with a new execution (in the same transaction), or null. */
  newRow(executionId: string, notify: NotifyDto | null | undefined) {
    if (!notify) return null;
    const id = randomUUID();
    const row: NotificationEntity = {
      id,
      executionId,
      url: notify.url,
      secret: notify.secret ? this.box.seal(notify.secret, id) : null,
      status: 'waiting',
      body: null,
      attempts: 0,
      nextAttemptAt: null,
      claimedBy: null,
      claimedAt: null,
      createdAt: Date.now(),
    };
    return this.repo.insertStep(row);
  }

  /**
   * The `notify` an execution was submitted with (its secret unsealed), for a rerun of it;
   * null when it had none.
   */
  async notifyOf(executionId: string): Promise<NotifyDto | null> {
    const [first] = await this.repo.ofExecution(executionId);
    if (!first) return null;
    const n = first.notification;
    return { url: n.url, ...(n.secret ? { secret: this.box.open(n.secret, n.id) } : {}) };
  }

  /** An execution ended here: look for its notification now rather than at the next poll. */
  executionEnded(): void {
    if (!this.stopped) setImmediate(() => this.kick());
  }

  async view(executionId: string): Promise<ExecutionNotificationsView> {
    if (!isUuid(executionId) || !(await this.executions.exists(executionId))) {
      throw new NotFoundException(`execution ${executionId} not found`);
    }
    const items = (await this.repo.ofExecution(executionId)).map(
      ({ notification: n, attempts }) => ({
        deliveryId: n.id,
        url: shownUrl(n.url),
        signed: n.secret !== null,
        status: n.status,
        nextAttemptAt: n.status === 'pending' ? iso(n.nextAttemptAt) : null,
        attempts: attempts.map((a) => ({
          attempt: a.attempt,
          at: iso(a.at)!,
          httpStatus: a.httpStatus,
          error: a.error,
          durationMs: a.durationMs,
        })),
      }),
    );
    return { executionId, items };
  }

  private kick(): void {
    if (this.stopped) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    void this.pump()
      .catch((e) => this.logger.warn(`notification poll failed: ${(e as Error).message}`))
      .finally(() => {
        this.pumping = false;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async pump(): Promise<void> {
    const now = Date.now();
    for (const w of await this.repo.endedWaiting(PAGE)) {
      const found = await this.executions.find(w.executionId);
      if (!found) continue;
      const body = JSON.stringify({
        deliveryId: w.id,
        event: 'execution.finished',
        execution: executionView(found.execution, found.targets),
      });
      await this.repo.promote(w.id, body, Date.now());
    }
    const { timeoutMs } = this.config.notifications;
    const staleBefore = now - 2 * timeoutMs - 5000;
    for (const s of await this.repo.stale(staleBefore, this.config.replicaId, PAGE)) {
      if (this.inFlight.has(s.id)) continue;
      await this.settle(s, {
        httpStatus: null,
        error: 'interrupted: the replica sending it stopped',
        durationMs: 0,
      }).catch(() => undefined); // another replica took it back first
    }
    if (this.inFlight.size >= MAX_IN_FLIGHT) return;
    for (const id of await this.repo.due(Date.now(), PAGE)) {
      if (this.inFlight.size >= MAX_IN_FLIGHT || this.stopped) break;
      if (this.inFlight.has(id)) continue;
      const claimed = await this.repo.claim(id, this.config.replicaId, Date.now());
      if (claimed) this.send(claimed);
    }
  }

  private send(n: NotificationEntity): void {
    const abort = new AbortController();
    const body = n.body ?? '';
    const headers: Record<string, string> = {
      'Content-Type': 'application/json',
      'User-Agent': 'cronium-orchestrator',
      'X-Cronium-Delivery': n.id,
      'X-Cronium-Attempt': String(n.attempts),
      'X-Cronium-Timestamp': String(Math.floor(Date.now() / 1000)),
    };
    if (n.secret) {
      const key = this.box.open(n.secret, n.id);
      headers['X-Cronium-Signature'] =
        'sha256=' + createHmac('sha256', key).update(body, 'utf8').digest('hex');
    }
    const done = postOnce(n.url, body, headers, this.config.notifications.timeoutMs, abort.signal)
      .then((result) => this.settle(n, result))
      .catch((e) => this.logger.warn(`notification ${n.id}: ${(e as Error).message}`))
      .finally(() => {
        this.inFlight.delete(n.id);
        this.kick();
      });
    this.inFlight.set(n.id, { abort, done });
  }

  /** Records the attempt made under this claim and moves the notification on. */
  private async settle(
    n: NotificationEntity,
    r: { httpStatus: number | null; error: string | null; durationMs: number },
  ): Promise<void> {
    const { maxAttempts, backoff } = this.config.notifications;
    const ok = r.error === null;
    const status = ok ? 'delivered' : n.attempts >= maxAttempts ? 'failed' : 'pending';
    const nextAttemptAt =
      status === 'pending' ? Date.now() + backoffDelay(backoff, n.attempts - 1) : null;
    await this.repo.settle(
      n,
      {
        notificationId: n.id,
        attempt: n.attempts,
        executionId: n.executionId,
        at: n.claimedAt ?? Date.now(),
        httpStatus: r.httpStatus,
        error: r.error,
        durationMs: r.durationMs,
      },
      { status, nextAttemptAt },
    );
    const result = ok ? 'delivered' : status === 'failed' ? 'failed' : 'retrying';
    this.metrics.notificationDeliveries.inc({ result });
    if (status === 'failed') {
      this.logger.warn({
        msg: 'notification failed',
        executionId: n.executionId,
        deliveryId: n.id,
        attempts: n.attempts,
        error: r.error,
      });
    }
  }
}
