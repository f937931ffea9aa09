import {
  BadRequestException,
  ConflictException,
  HttpException,
  NotFoundException,
  PayloadTooLargeException,
  ServiceUnavailableException,
  UnprocessableEntityException,
} from '@nestjs/common';
import * as os from 'node:os';
import type { AppConfig } from '../config/app-config';
import { loadConfig } from '../config/load-config';
import { newExecution, newTarget } from '../executions/execution-factory';
import type { ExecutionRecord, TargetRecord } from '../executions/records';
import type { ExecutionRequestSummary } from '../executions/request';
import type { ExecutionPlan } from '../executor/execution-plan';
import type { ExecutorService } from '../executor/executor.service';
import { MetricsService } from '../metrics/metrics.service';
import type { ExecutionEventsRepository } from '../persistence/execution-events.repository';
import type { ServerEntity } from '../persistence/entities';
import type { ExecutionsRepository, ListQuery } from '../persistence/executions.repository';
import type { ServersService, TargetSelector } from '../servers/servers.service';
import type { SshEndpoint } from '../ssh/ssh.types';
import type { CreateJobDto } from './dto/create-job.dto';
import { JobsService } from './jobs.service';
import { ExecutionEventsService } from '../status/execution-events.service';

// ---------------------------------------------------------------- fakes of our own ports

/** ExecutionsRepository in memory, with the same ordering and unique idempotency key. */
class FakeExecutions
  implements
    Pick<ExecutionsRepository, 'create' | 'findByIdempotencyKey' | 'find' | 'list' | 'targetsOf'>
{
  executions: ExecutionRecord[] = [];
  targets: TargetRecord[] = [];
  listCalls: ListQuery[] = [];
  /** Answer the next idempotency look-up with null (a concurrent retry is about to win). */
  missNextKeyLookup = false;

  async create(execution: ExecutionRecord, targets: TargetRecord[]): Promise<void> {
    const key = execution.idempotencyKey;
    if (key !== null && this.executions.some((e) => e.idempotencyKey === key)) {
      throw new Error('UNIQUE constraint failed: executions.idempotencyKey');
    }
    this.executions.push({ ...execution });
    this.targets.push(...targets.map((t) => ({ ...t })));
  }

  async findByIdempotencyKey(key: string): Promise<ExecutionRecord | null> {
    if (this.missNextKeyLookup) {
      this.missNextKeyLookup = false;
      return null;
    }
    return this.executions.find((e) => e.idempotencyKey === key) ?? null;
  }

  async find(id: string) {
    const execution = this.executions.find((e) => e.id === id);
    return execution ? { execution, targets: await this.targetsOf([id]) } : null;
  }

  /** createdAt, then id, both descending; the cursor is the last row already seen. */
  async list(q: ListQuery): Promise<ExecutionRecord[]> {
    this.listCalls.push(q);
    const after = q.cursor;
    return this.executions
      .filter((e) => !q.status?.length || q.status.includes(e.status))
      .filter(
        (e) =>
          !after ||
          e.createdAt < after.createdAt ||
          (e.createdAt === after.createdAt && e.id < after.id),
      )
      .sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1))
      .slice(0, q.limit);
  }

  async targetsOf(ids: string[]): Promise<TargetRecord[]> {
    return this.targets
      .filter((t) => ids.includes(t.executionId))
      .sort((a, b) => a.position - b.position);
  }
}

/** The inventory with ServersService's contract: the de-duplicated union, ordered by name. */
class FakeServers
  implements Pick<ServersService, 'findByIdsAndTags' | 'baseDirOf' | 'getEndpoint'>
{
  selectors: TargetSelector[] = [];

  constructor(readonly all: ServerEntity[]) {}

  async findByIdsAndTags(selector: TargetSelector): Promise<ServerEntity[]> {
    this.selectors.push(selector);
    const ids = new Set(selector.serverIds ?? []);
    const tags = new Set(selector.tags ?? []);
    return this.all
      .filter((s) => ids.has(s.id) || s.tags.some((t) => tags.has(t)))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  baseDirOf(server: Pick<ServerEntity, 'baseDir'>): string {
    return server.baseDir ?? '~/.cache/cronium';
  }

  async getEndpoint(id: string): Promise<SshEndpoint> {
    return { serverId: id, host: `${id}.internal` } as SshEndpoint;
  }
}

/** ExecutorService as JobsService sees it: seal and submit a plan, cancel what still runs. */
class FakeExecutor implements Pick<ExecutorService, 'submit' | 'requestCancel' | 'seal'> {
  plans: ExecutionPlan[] = [];
  running = new Set<string>();
  cancelled: string[] = [];

  seal(executionId: string, job: Pick<ExecutionPlan, 'script' | 'env' | 'input'>): string {
    return `sealed:${executionId}:${job.script.content.length}`;
  }

  async submit(plan: ExecutionPlan): Promise<void> {
    this.plans.push(plan);
    this.running.add(plan.execution.id);
  }

  async requestCancel(executionId: string): Promise<boolean> {
    if (!this.running.delete(executionId)) return false;
    this.cancelled.push(executionId);
    return true;
  }
}

// ---------------------------------------------------------------- fixtures

const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

const server = (n: number, name: string, tags: string[], baseDir: string | null = null) =>
  ({ id: uuid(n), name, tags, baseDir }) as ServerEntity;

const WEB_B = server(1, 'web-b', ['web']);
const DB_A = server(2, 'db-a', ['db'], '/opt/cronium');
const WEB_C = server(3, 'web-c', ['web', 'db']);
const SPARE = server(4, 'spare', ['other']);

const job = (over: Partial<CreateJobDto> = {}): CreateJobDto => ({
  script: { type: 'bash', content: 'echo hello' },
  targets: { tags: ['web'] },
  ...over,
});

/** List and cancel never read the request summary. */
const REQUEST = { scriptType: 'bash', targets: { tags: ['web'] } } as ExecutionRequestSummary;

const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('JobsService', () => {
  let config: AppConfig;
  let repo: FakeExecutions;
  let servers: FakeServers;
  let executor: FakeExecutor;
  let jobs: JobsService;

  beforeEach(() => {
    config = loadConfig({
      NODE_ENV: 'test',
      CRONIUM_DATA_DIR: os.tmpdir(),
      CRONIUM_SECRETS_KEY: 'x'.repeat(64),
      CRONIUM_JWT_SECRET: 'j'.repeat(48),
      CRONIUM_SERVICE_TOKENS: 'token-aaaaaaaaaaaaaaaa',
      DATABASE_URL: 'sqlite::memory:',
    });
    repo = new FakeExecutions();
    servers = new FakeServers([WEB_B, DB_A, WEB_C, SPARE]);
    executor = new FakeExecutor();
    jobs = new JobsService(
      config,
      repo as unknown as ExecutionsRepository,
      servers as unknown as ServersService,
      executor as unknown as ExecutorService,
      {} as ExecutionEventsRepository,
      new ExecutionEventsService(),
      new MetricsService(),
    );
  });

  /** Runs `fn`, expecting it to fail with `type`; returns the HTTP status for a look. */
  async function refused(fn: () => Promise<unknown>, type: new (...a: any[]) => HttpException) {
    const err = await fn().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(type);
    return (err as HttpException).getStatus();
  }

  describe('submit', () => {
    it('plans one target per server, de-duplicated, in the inventory order', async () => {
      const view = await jobs.submit(
        job({ targets: { serverIds: [WEB_C.id, DB_A.id, WEB_C.id], tags: ['db', 'web'] } }),
      );

      expect(servers.selectors).toEqual([
        { serverIds: [WEB_C.id, DB_A.id, WEB_C.id], tags: ['db', 'web'] },
      ]);
      expect(executor.plans).toHaveLength(1);
      const plan = executor.plans[0];
      expect(plan.targets.map((t) => [t.position, t.serverName, t.baseDir])).toEqual([
        [0, 'db-a', '/opt/cronium'],
        [1, 'web-b', '~/.cache/cronium'],
        [2, 'web-c', '~/.cache/cronium'],
      ]);
      const stored = await repo.targetsOf([plan.execution.id]);
      expect(plan.targets.map((t) => t.targetId)).toEqual(stored.map((t) => t.id));
      expect(stored.map((t) => [t.position, t.serverId, t.status])).toEqual([
        [0, DB_A.id, 'queued'],
        [1, WEB_B.id, 'queued'],
        [2, WEB_C.id, 'queued'],
      ]);
      expect((await plan.targets[2].endpoint()).serverId).toBe(WEB_C.id);

      expect(view.id).toBe(plan.execution.id);
      expect(view.status).toBe('queued');
      expect(view.targets.map((t) => t.serverName)).toEqual(['db-a', 'web-b', 'web-c']);
      expect(view.summary.total).toBe(3);
    });

    it('fills in the defaults', async () => {
      await jobs.submit(job());
      const plan = executor.plans[0];
      expect(plan).toMatchObject({
        script: { type: 'bash', content: 'echo hello' },
        env: {},
        input: null,
        helperMode: 'auto',
        concurrency: config.executor.defaultConcurrency,
        timeoutSeconds: config.executor.defaultTimeoutSeconds,
        maxErrors: null,
        failFast: false,
      });
      expect(repo.executions[0]).toMatchObject({
        status: 'queued',
        name: null,
        jobId: null,
        eventId: null,
        userId: null,
        idempotencyKey: null,
        request: {
          scriptType: 'bash',
          scriptBytes: 10,
          envNames: [],
          helperMode: 'auto',
          concurrency: config.executor.defaultConcurrency,
          timeoutSeconds: config.executor.defaultTimeoutSeconds,
          maxErrors: null,
          failFast: false,
          targets: { serverIds: [], tags: ['web'] },
        },
      });
    });

    it('passes what the request says, and stores no secret', async () => {
      const secrets = {
        script: { type: 'python' as const, content: 'print("s3cr3t-script")' },
        env: { TOKEN: 's3cr3t-env' },
        input: { password: 's3cr3t-input' },
      };
      const options = { helperMode: 'bundled' as const, concurrency: 3, timeoutSeconds: 30 };
      await jobs.submit(
        job({ name: 'nightly', jobId: 'job-7', userId: 'user-1', ...secrets, ...options }),
      );
      expect(executor.plans[0]).toMatchObject({ ...secrets, ...options, failFast: false });
      await jobs.submit(job({ failFast: true }));
      expect(executor.plans[1].failFast).toBe(true);
      const stored = repo.executions[0];
      expect(stored).toMatchObject({ name: 'nightly', jobId: 'job-7', userId: 'user-1' });
      expect(stored.request.envNames).toEqual(['TOKEN']);
      expect(JSON.stringify([repo.executions, repo.targets])).not.toContain('s3cr3t');
    });

    it.each([
      [2, 2],
      [0, 0],
      ['50%', 1],
      ['100%', 2],
      ['10%', 0],
    ])('turns maxErrors %p into a budget of %p for two targets', async (maxErrors, budget) => {
      await jobs.submit(job({ maxErrors }));
      expect(executor.plans[0].maxErrors).toBe(budget);
      expect(repo.executions[0].request.maxErrors).toBe(maxErrors);
    });

    it('refuses a script over limits.maxScriptBytes with 413', async () => {
      config.limits.maxScriptBytes = 8;
      expect(await refused(() => jobs.submit(job()), PayloadTooLargeException)).toBe(413);
      await jobs.submit(job({ script: { type: 'bash', content: '12345678' } }));
      expect(executor.plans).toHaveLength(1);
    });

    it('refuses an input over limits.maxInputBytes with 413', async () => {
      config.limits.maxInputBytes = 16;
      const input = { text: 'x'.repeat(16) };
      expect(await refused(() => jobs.submit(job({ input })), PayloadTooLargeException)).toBe(413);
    });

    it('refuses more env vars than limits.maxEnvVars with 400', async () => {
      config.limits.maxEnvVars = 2;
      const env = { A: '1', B: '2', C: '3' };
      expect(await refused(() => jobs.submit(job({ env })), BadRequestException)).toBe(400);
      await jobs.submit(job({ env: { A: '1', B: '2' } }));
      expect(executor.plans).toHaveLength(1);
    });

    it('refuses a timeout over executor.maxTimeoutSeconds with 400', async () => {
      const max = config.executor.maxTimeoutSeconds;
      const tooLong = job({ timeoutSeconds: max + 1 });
      expect(await refused(() => jobs.submit(tooLong), BadRequestException)).toBe(400);
      config.executor.defaultTimeoutSeconds = max + 1;
      expect(await refused(() => jobs.submit(job()), BadRequestException)).toBe(400);
      await jobs.submit(job({ timeoutSeconds: max }));
      expect(executor.plans[0].timeoutSeconds).toBe(max);
    });

    it.each([{}, { serverIds: [], tags: [] }])('refuses empty targets %p with 400', async (t) => {
      expect(await refused(() => jobs.submit(job({ targets: t })), BadRequestException)).toBe(400);
      expect(servers.selectors).toEqual([]);
    });

    it('refuses tags that match no server with 400', async () => {
      const none = job({ targets: { tags: ['nothing'] } });
      expect(await refused(() => jobs.submit(none), BadRequestException)).toBe(400);
    });

    it('refuses new jobs with 503 once it stops accepting', async () => {
      jobs.stopAccepting();
      expect(await refused(() => jobs.submit(job()), ServiceUnavailableException)).toBe(503);
    });

    it('stores and starts nothing when it refuses', async () => {
      await refused(() => jobs.submit(job({ targets: {} })), BadRequestException);
      await refused(
        () => jobs.submit(job({ targets: { tags: ['nothing'] } })),
        BadRequestException,
      );
      config.limits.maxScriptBytes = 1;
      await refused(() => jobs.submit(job()), PayloadTooLargeException);
      expect(repo.executions).toEqual([]);
      expect(executor.plans).toEqual([]);
    });

    describe('Idempotency-Key', () => {
      it('returns the execution the key already made, without starting another', async () => {
        const first = await jobs.submit(job(), 'retry-1');
        // the same request, its keys in another order
        const again = await jobs.submit(JSON.parse(JSON.stringify(job())), 'retry-1');
        expect(again).toEqual(first);
        expect(repo.executions).toHaveLength(1);
        expect(executor.plans).toHaveLength(1);
        // stored scoped and hashed, not as sent
        expect(repo.executions[0].idempotencyKey).toMatch(/^\.[0-9a-f]{64}$/);
        await jobs.submit(job(), 'retry-2');
        expect(executor.plans).toHaveLength(2);
      });

      it('answers 422 when the key comes again with a different request, creating nothing', async () => {
        await jobs.submit(job(), 'retry-3');
        const other = job({ script: { type: 'node', content: 'x' } });
        expect(
          await refused(() => jobs.submit(other, 'retry-3'), UnprocessableEntityException),
        ).toBe(422);
        expect(repo.executions).toHaveLength(1);
      });

      it('keeps the keys of different callers apart', async () => {
        const a = await jobs.submit(job(), 'shared-name', 'caller-a');
        const b = await jobs.submit(job(), 'shared-name', 'caller-b');
        expect(b.id).not.toBe(a.id);
        expect((await jobs.submit(job(), 'shared-name', 'caller-a')).id).toBe(a.id);
        expect(executor.plans).toHaveLength(2);
      });

      it('returns the winner when a concurrent retry stored the key first', async () => {
        const winner = await jobs.submit(job(), 'race');
        repo.missNextKeyLookup = true;
        expect((await jobs.submit(job(), 'race')).id).toBe(winner.id);
        expect(executor.plans).toHaveLength(1);
      });

      it('refuses a key that is not 1-200 visible ASCII characters with 400', async () => {
        for (const key of ['', 'has space', 'x'.repeat(201), 'café']) {
          expect(await refused(() => jobs.submit(job(), key), BadRequestException)).toBe(400);
        }
      });
    });
  });

  describe('list', () => {
    /** Seven executions, two of them created in the same millisecond; newest first. */
    function seed(): string[] {
      const at = [100, 200, 300, 300, 400, 500, 600];
      for (const [i, createdAt] of at.entries()) {
        const e = { ...newExecution({ request: REQUEST, createdAt }), id: uuid(10 + i) };
        if (i % 2) e.status = 'succeeded';
        repo.executions.push(e);
        repo.targets.push(newTarget(e.id, 0, WEB_B), newTarget(e.id, 1, DB_A));
      }
      return [16, 15, 14, 13, 12, 11, 10].map(uuid);
    }

    it('pages newest first until nextCursor is null', async () => {
      const newestFirst = seed();
      const seen: string[] = [];
      const pages: number[] = [];
      let cursor: string | undefined;
      for (let i = 0; i < 10; i++) {
        const page = await jobs.list({ limit: 3, cursor });
        seen.push(...page.items.map((e) => e.id));
        pages.push(page.items.length);
        if (page.nextCursor === null) break;
        expect(page.nextCursor).toMatch(/^[A-Za-z0-9_-]+$/);
        cursor = page.nextCursor;
      }
      expect(seen).toEqual(newestFirst);
      expect(pages).toEqual([3, 3, 1]);
    });

    it('gives a cursor after a full last page, then an empty page', async () => {
      const newestFirst = seed();
      const first = await jobs.list({ limit: 7 });
      expect(first.items.map((e) => e.id)).toEqual(newestFirst);
      expect(first.nextCursor).not.toBeNull();
      expect(await jobs.list({ limit: 7, cursor: first.nextCursor! })).toEqual({
        items: [],
        nextCursor: null,
      });
    });

    it('encodes the last item as base64url of [createdAt, id]', async () => {
      seed();
      const page = await jobs.list({ limit: 2 });
      expect(JSON.parse(Buffer.from(page.nextCursor!, 'base64url').toString())).toEqual([
        500,
        uuid(15),
      ]);
      expect(repo.listCalls[0]).toEqual({ status: undefined, limit: 2, cursor: undefined });
      await jobs.list({ limit: 2, cursor: page.nextCursor! });
      expect(repo.listCalls[1].cursor).toEqual({ createdAt: 500, id: uuid(15) });
    });

    it('defaults to 50 a page, filters by status and shows each execution its own targets', async () => {
      seed();
      const page = await jobs.list({ status: ['succeeded'] });
      expect(repo.listCalls[0].limit).toBe(50);
      expect(page.items.map((e) => e.id)).toEqual([uuid(15), uuid(13), uuid(11)]);
      expect(page.nextCursor).toBeNull();
      for (const item of page.items) {
        expect(item.targets.map((t) => t.serverName)).toEqual(['web-b', 'db-a']);
        expect(item.summary.total).toBe(2);
      }
    });

    const id = uuid(12);
    it.each([
      ['empty', ''],
      ['not base64url', '%27%3B--'],
      ['base64 padding', `${encode([300, id])}=`],
      ['in the standard base64 alphabet', 'ab+/'],
      ['non-canonical base64url', 'YR'],
      ['the old <createdAt>.<id> form', `300.${id}`],
      ['not JSON', Buffer.from('[300,').toString('base64url')],
      ['a JSON object', encode({ createdAt: 300, id })],
      ['a single number', encode(300)],
      ['a pair too short', encode([300])],
      ['a pair too long', encode([300, id, 1])],
      ['createdAt as a string', encode(['300', id])],
      ['createdAt not an integer', encode([300.5, id])],
      ['createdAt negative', encode([-1, id])],
      ['createdAt too large', Buffer.from(`[1e400,"${id}"]`).toString('base64url')],
      ['createdAt null', encode([null, id])],
      ['id not a UUID', encode([300, 'not-a-uuid'])],
      ['id a number', encode([300, 12])],
      ['the pair reversed', encode([id, 300])],
    ])('refuses a cursor that is %s with 400, before any query', async (_what, cursor) => {
      seed();
      const err = await jobs.list({ cursor }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BadRequestException);
      expect((err as BadRequestException).message).toMatch(/^cursor is not a cursor this API/);
      expect(repo.listCalls).toEqual([]);
    });
  });

  describe('view and cancel', () => {
    it('cancels a running execution and returns it', async () => {
      const { id } = await jobs.submit(job());
      const view = await jobs.cancel(id);
      expect(view.id).toBe(id);
      expect(executor.cancelled).toEqual([id]);
    });

    it('refuses to cancel an execution that is not running with 409', async () => {
      const { id } = await jobs.submit(job());
      await jobs.cancel(id);
      expect(await refused(() => jobs.cancel(id), ConflictException)).toBe(409);
      const stored = { ...newExecution({ request: REQUEST }), status: 'succeeded' as const };
      repo.executions.push(stored);
      const err = await jobs.cancel(stored.id).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConflictException);
      expect((err as ConflictException).message).toBe(
        `execution ${stored.id} is already succeeded`,
      );
    });

    it('answers 404 for an unknown or malformed id', async () => {
      for (const id of [uuid(99), 'not-a-uuid']) {
        expect(await refused(() => jobs.view(id), NotFoundException)).toBe(404);
        expect(await refused(() => jobs.cancel(id), NotFoundException)).toBe(404);
      }
      expect(executor.cancelled).toEqual([]);
    });
  });
});
