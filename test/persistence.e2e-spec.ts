import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import { newTarget } from '../src/executions/execution-factory';
import { dataSourceOptions } from '../src/persistence/data-source-options';
import {
  ExecutionEntity,
  ExecutionEventEntity,
  ExecutionTargetEntity,
  ServerEntity,
  VariableEntity,
} from '../src/persistence/entities';
import { ExecutionEventsRepository } from '../src/persistence/execution-events.repository';
import { ExecutionsRepository } from '../src/persistence/executions.repository';
import { ServersRepository } from '../src/persistence/servers.repository';
import { isUniqueViolation } from '../src/persistence/write-errors';
import { prefixRange } from '../src/common/query-list';
import { registerServer, startApp, waitForExecution } from './support/app';
import { freshSchema, postgresReachableSync } from './support/postgres';
import { startSshd } from './support/sshd';

function execution(id: string, createdAt: number, key: string | null = null): ExecutionEntity {
  return {
    id,
    name: 'n',
    jobId: null,
    eventId: null,
    userId: null,
    status: 'running',
    idempotencyKey: key,
    request: {
      scriptType: 'bash',
      scriptBytes: 1,
      envNames: [],
      timeoutSeconds: 10,
      helperMode: 'auto',
      concurrency: 1,
      maxErrors: null,
      failFast: false,
      targets: { serverIds: [] },
    },
    createdAt,
    startedAt: null,
    finishedAt: null,
    ownerId: null,
    heartbeatAt: null,
    cancelRequestedAt: null,
    requestHash: null,
    rerunOf: null,
    reason: null,
  };
}

/** A fresh target from the factory, with a JSON output and timed phases to round-trip. */
function target(id: string, executionId: string, position: number): ExecutionTargetEntity {
  return {
    ...newTarget(
      executionId,
      position,
      { id: '00000000-0000-4000-8000-000000000001', name: 's' },
      position + 1,
    ),
    id,
    output: { nested: ['json', 1, true] },
    condition: true,
    phases: { connectMs: 1, deployMs: null, tunnelMs: null, runMs: 3 },
  };
}

const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

/** Every index as `table(col1,col2)`, whatever its name. */
async function indexedColumns(ds: DataSource): Promise<string[]> {
  if (ds.options.type === 'postgres') {
    const rows: { t: string; d: string }[] = await ds.query(
      'SELECT tablename AS t, indexdef AS d FROM pg_indexes WHERE schemaname = current_schema()',
    );
    // indexdef ends in the column list: (name COLLATE "C"), ("jobId", "createdAt")
    const columns = (d: string) =>
      /\(([^()]*)\)$/
        .exec(d)![1]
        .replace(/"/g, '')
        .replace(/ COLLATE C|\s/g, '');
    return rows.map((r) => `${r.t}(${columns(r.d)})`);
  }
  const rows: { t: string; c: string }[] = await ds.query(
    `SELECT m.tbl_name AS t, (SELECT group_concat(name) FROM
       (SELECT name FROM pragma_index_info(m.name) ORDER BY seqno)) AS c
     FROM sqlite_master m WHERE m.type = 'index'`,
  );
  return rows.map((r) => `${r.t}(${r.c})`);
}

/** The same repository behaviour on both databases. */
function repositoryContract(name: string, url: () => Promise<string>) {
  describe(`persistence on ${name}`, () => {
    let ds: DataSource;
    let repo: ExecutionsRepository;
    let events: ExecutionEventsRepository;

    beforeAll(async () => {
      ds = new DataSource(dataSourceOptions(await url()));
      await ds.initialize(); // runs the migrations
      repo = new ExecutionsRepository(ds);
      events = new ExecutionEventsRepository(ds);
    });
    afterAll(async () => ds?.destroy());

    it('stores executions with targets and reads them back with types intact', async () => {
      const t0 = 1_763_800_000_000;
      await repo.create(execution(uuid(1), t0), [
        target(uuid(101), uuid(1), 0),
        target(uuid(102), uuid(1), 1),
      ]);
      const found = await repo.find(uuid(1));
      expect(found!.execution.createdAt).toBe(t0);
      expect(found!.execution.request.scriptType).toBe('bash');
      expect(found!.targets.map((t) => t.id)).toEqual([uuid(101), uuid(102)]);
      expect(found!.targets[0].output).toEqual({ nested: ['json', 1, true] });
      expect(found!.targets[0].condition).toBe(true);
      expect(found!.targets[0].truncated).toBe(false);
      expect(found!.targets.map((t) => t.batch)).toEqual([1, 2]);
      expect(found!.execution.reason).toBeNull();
      await repo.updateExecution(uuid(1), { reason: 'batch 1: 1 of 2 targets failed (50%)' });
      expect((await repo.find(uuid(1)))!.execution.reason).toBe(
        'batch 1: 1 of 2 targets failed (50%)',
      );
      await repo.updateTarget(uuid(101), { status: 'failed', exitCode: 3, truncated: true });
      const again = await repo.find(uuid(1));
      expect(again!.targets[0]).toMatchObject({ status: 'failed', exitCode: 3, truncated: true });
    });

    it('the prepared statements of the hot path read and write exactly what TypeORM does', async () => {
      const typeorm = async (id: string) => ({
        execution: await ds.getRepository(ExecutionEntity).findOneByOrFail({ id }),
        targets: await ds
          .getRepository(ExecutionTargetEntity)
          .find({ where: { executionId: id }, order: { position: 'ASC' } }),
      });
      await repo.create(execution(uuid(50), 1_763_800_000_300), [
        target(uuid(501), uuid(50), 0),
        { ...target(uuid(502), uuid(50), 1), output: null, condition: null },
      ]);
      expect(await repo.find(uuid(50))).toEqual(await typeorm(uuid(50)));
      // Every kind of column through the prepared UPDATE: booleans, JSON, bigints, nulls.
      await repo.updateTarget(uuid(502), {
        status: 'succeeded',
        truncated: true,
        condition: false,
        output: 'text ✓',
        startedAt: 1_763_800_000_301,
        finishedAt: 1_763_800_000_302,
        phases: { connectMs: 0, deployMs: 1, tunnelMs: null, runMs: 9 },
        errorMessage: undefined,
      });
      await repo.updateExecution(uuid(50), { status: 'succeeded', finishedAt: 1_763_800_000_303 });
      const after = await repo.find(uuid(50));
      expect(after).toEqual(await typeorm(uuid(50)));
      expect(after!.targets[1]).toMatchObject({
        truncated: true,
        condition: false,
        output: 'text ✓',
        finishedAt: 1_763_800_000_302,
      });
      expect(after!.execution).toMatchObject({
        status: 'succeeded',
        finishedAt: 1_763_800_000_303,
      });
      // And what TypeORM writes, the prepared SELECT reads the same way.
      await ds.getRepository(ExecutionTargetEntity).update({ id: uuid(501) }, { condition: false });
      expect(await repo.find(uuid(50))).toEqual(await typeorm(uuid(50)));
      await expect(repo.updateTarget(uuid(501), { nope: 1 } as any)).rejects.toThrow(/nope/);
    });

    it("a job's read of its server (prepared) equals TypeORM's", async () => {
      const servers = new ServersRepository(ds);
      const row: ServerEntity = {
        id: uuid(60),
        name: `fast-${Date.now()}`,
        host: 'h.example',
        port: 2222,
        username: 'u',
        authType: 'key',
        credentials: 'v1.sealed',
        hostKeyFingerprint: 'SHA256:abc',
        hostKeyType: null,
        hostKeyPinnedAt: 1_763_800_000_600,
        hostKeySource: 'given',
        tags: ['web', 'eu'],
        baseDir: null,
        jumpServerId: uuid(61),
        becomePassword: 'v1.sealed-become',
        createdAt: 1_763_800_000_601,
        updatedAt: 1_763_800_000_602,
      };
      await servers.insert(row);
      const typeorm = await ds.getRepository(ServerEntity).findOneByOrFail({ id: uuid(60) });
      expect(await servers.findById(uuid(60))).toEqual(typeorm);
      expect(await servers.findByIds([uuid(60)])).toEqual([typeorm]);
      expect(typeorm).toEqual(row);
      expect(await servers.findById(uuid(61))).toBeNull();
    });

    it('keeps each target id with its own row, whatever order the ids sort in', async () => {
      const ids = [uuid(209), uuid(203), uuid(207), uuid(201)];
      const targets = ids.map((id, i) => ({ ...target(id, uuid(20), i), serverName: `srv-${i}` }));
      await repo.create(execution(uuid(20), 1_763_800_000_050), targets);
      expect(targets.map((t) => t.id)).toEqual(ids); // the caller's objects are untouched
      const found = await repo.find(uuid(20));
      expect(found!.targets.map((t) => [t.id, t.serverName])).toEqual(
        ids.map((id, i) => [id, `srv-${i}`]),
      );
    });

    it('enforces one execution per idempotency key', async () => {
      await repo.create(execution(uuid(2), 1_763_800_000_100, 'k1'), []);
      // The driver's own error (a prepared statement): from another realm under jest when
      // an earlier suite loaded the native module, so matched by what it says, not its class.
      const refused = await repo.create(execution(uuid(3), 1_763_800_000_200, 'k1'), []).then(
        () => null,
        (e: unknown) => e,
      );
      expect(isUniqueViolation(refused)).toBe(true);
      expect((await repo.findByIdempotencyKey('k1'))!.id).toBe(uuid(2));
      expect(await repo.find(uuid(3))).toBeNull();
    });

    it('pages executions newest first with a stable cursor', async () => {
      for (let i = 10; i < 15; i++)
        await repo.create(execution(uuid(i), 1_763_900_000_000 + i), []);
      const first = await repo.list({ limit: 2 });
      const second = await repo.list({
        limit: 2,
        cursor: { createdAt: first[1].createdAt, id: first[1].id },
      });
      expect(first.map((e) => e.id)).toEqual([uuid(14), uuid(13)]);
      expect(second.map((e) => e.id)).toEqual([uuid(12), uuid(11)]);
      expect((await repo.list({ limit: 50, status: ['running'] })).length).toBeGreaterThanOrEqual(
        5,
      );
    });

    it('filters executions by every field (AND), with a literal name prefix, on indexes', async () => {
      const at = 1_700_000_000_000; // older than every other row here: its own time window
      const rows: [number, Partial<ExecutionEntity>, string][] = [
        [0, { name: 'deploy-web', jobId: 'j1', userId: 'u1', status: 'succeeded' }, uuid(91)],
        [1, { name: 'deploy_db', jobId: 'j1', userId: 'u2', status: 'failed' }, uuid(92)],
        [2, { name: '50%-off', eventId: 'e1', userId: 'u1', status: 'partial' }, uuid(93)],
        [3, { name: 'Déploy ✓', eventId: 'e1', userId: 'u1', status: 'succeeded' }, uuid(91)],
        [4, { name: 'deployX', rerunOf: uuid(60), userId: 'u3', status: 'cancelled' }, uuid(92)],
      ];
      for (const [i, over, server] of rows) {
        await repo.create({ ...execution(uuid(60 + i), at + i), ...over }, [
          { ...target(uuid(600 + i), uuid(60 + i), 0), serverId: server },
        ]);
      }
      const ids = async (q: Omit<Parameters<ExecutionsRepository['list']>[0], 'limit'>) =>
        (await repo.list({ limit: 50, createdAfter: at, createdBefore: at + 10, ...q })).map(
          (e) => e.id,
        );
      const ex = (...n: number[]) => n.map((i) => uuid(60 + i));
      expect(await ids({ jobId: 'j1' })).toEqual(ex(1, 0));
      expect(await ids({ userId: 'u1', eventId: 'e1' })).toEqual(ex(3, 2));
      expect(await ids({ serverId: uuid(92) })).toEqual(ex(4, 1));
      expect(await ids({ status: ['failed', 'cancelled'] })).toEqual(ex(4, 1));
      expect(await ids({ status: ['succeeded'], userId: 'u1' })).toEqual(ex(3, 0));
      expect(await ids({ name: prefixRange('deploy') })).toEqual(ex(4, 1, 0));
      expect(await ids({ name: prefixRange('deploy_') })).toEqual(ex(1));
      expect(await ids({ name: prefixRange('50%') })).toEqual(ex(2));
      expect(await ids({ name: prefixRange('%') })).toEqual([]);
      expect(await ids({ name: prefixRange('Dé') })).toEqual(ex(3));
      expect(await ids({ name: prefixRange('DEPLOY') })).toEqual([]);
      expect(await ids({ createdAfter: at + 1, createdBefore: at + 3 })).toEqual(ex(2, 1));
      expect((await repo.find(uuid(64)))!.execution.rerunOf).toBe(uuid(60));
      const page = await repo.list({ limit: 2, userId: 'u1', createdBefore: at + 10 });
      const rest = await repo.list({
        limit: 2,
        userId: 'u1',
        createdBefore: at + 10,
        cursor: { createdAt: page[1].createdAt, id: page[1].id },
      });
      expect([...page, ...rest].map((e) => e.id)).toEqual(ex(3, 2, 0));
      // every filter has its index (migration FindAndRerun1765200000000), by its columns:
      // SQLite renames a table's indexes when a later migration rebuilds it to add a column
      const indexes = await indexedColumns(ds);
      for (const i of [
        'executions(jobId,createdAt)',
        'executions(userId,createdAt)',
        'executions(eventId,createdAt)',
        'executions(status,createdAt)',
        'executions(name)',
        'executions(rerunOf)',
        'execution_targets(serverId,executionId)',
        'servers(name)',
      ])
        expect([i, indexes]).toEqual([i, expect.arrayContaining([i])]);
    });

    it('lists servers by name prefix and after a name, in code-point order', async () => {
      const servers = new ServersRepository(ds);
      for (const [i, name] of ['srv_1', 'srv-2', 'srv%3', 'SRV-4', 'srvé'].entries()) {
        await servers.insert({
          id: uuid(700 + i),
          name,
          host: 'h',
          port: 22,
          username: 'u',
          authType: 'password',
          credentials: 'x',
          hostKeyFingerprint: null,
          hostKeyType: null,
          hostKeyPinnedAt: null,
          hostKeySource: null,
          tags: [],
          baseDir: null,
          jumpServerId: null,
          becomePassword: null,
          createdAt: 1,
          updatedAt: 1,
        });
      }
      const names = async (q: Parameters<ServersRepository['list']>[0]) =>
        (await servers.list(q)).map((s) => s.name);
      expect(await names({ name: prefixRange('srv') })).toEqual([
        'srv%3',
        'srv-2',
        'srv_1',
        'srvé',
      ]);
      expect(await names({ name: prefixRange('srv_') })).toEqual(['srv_1']);
      expect(await names({ name: prefixRange('srv%') })).toEqual(['srv%3']);
      expect(await names({ name: prefixRange('srv'), afterName: 'srv-2' })).toEqual([
        'srv_1',
        'srvé',
      ]);
    });

    it('keeps events in order and serves logs by log sequence', async () => {
      const rows = Array.from({ length: 250 }, (_, i) => ({
        executionId: uuid(1),
        seq: i + 1,
        type: i % 5 === 0 ? 'status' : 'log',
        serverId: uuid(9),
        logSeq: null as number | null,
        stream: 'stdout',
        ts: 1_763_800_000_000 + i,
        text: `line ${i} ✓ 'quoted' "double"`,
        data: null,
      }));
      let logSeq = 0;
      for (const r of rows) if (r.type === 'log') r.logSeq = ++logSeq;
      await events.insertMany(rows as any);
      const page = await events.logs(uuid(1), 10, 5);
      expect(page.map((r) => r.logSeq)).toEqual([11, 12, 13, 14, 15]);
      expect(page[0].text).toContain("✓ 'quoted'");
      expect(await events.lastSeqs(uuid(1))).toEqual({ seq: 250, logSeq: 200 });
      expect(await events.lastSeqs(uuid(77))).toEqual({ seq: 0, logSeq: 0 });
    });

    it('inserts events in bulk over several chunks and replays them per server', async () => {
      const ex = uuid(30);
      await repo.create(execution(ex, 1_763_800_000_300), []);
      const servers = [uuid(31), uuid(32)];
      const rows: ExecutionEventEntity[] = Array.from({ length: 4500 }, (_, i) => ({
        executionId: ex,
        seq: i + 1,
        type: 'log',
        serverId: servers[i % 2],
        logSeq: i + 1,
        stream: i % 3 === 0 ? 'stderr' : 'stdout',
        ts: 1_763_800_000_000 + i,
        text: `line ${i}`,
        data: null,
        byteOffset: (i + 1) * 8,
      }));
      rows.push({
        ...rows[0],
        seq: 4501,
        type: 'end',
        serverId: null,
        logSeq: null,
        stream: null,
        text: null,
        data: { status: 'succeeded' },
        byteOffset: null,
      });
      expect(await events.endSeq(ex)).toBeNull();
      await events.insertMany(rows);
      expect(await events.lastSeqs(ex)).toEqual({ seq: 4501, logSeq: 4500 });
      expect(await events.endSeq(ex)).toBe(4501);
      expect(await repo.exists(ex)).toBe(true);
      expect(await repo.exists(uuid(39))).toBe(false);

      const page = await events.replayPage(ex, 4490, 1000);
      expect(page.map((r) => r.seq)).toEqual([...Array(11).keys()].map((i) => 4491 + i));
      expect(page[page.length - 1].data).toEqual({ status: 'succeeded' });
      const mine = await events.replayPage(ex, 4490, 1000, servers[0]);
      expect(mine.map((r) => r.seq)).toEqual([4491, 4493, 4495, 4497, 4499, 4501]);
      expect(await events.replayPage(ex, 0, 3, servers[1])).toHaveLength(3);

      // A follower resumes each stream just past its last stored entry.
      const last = (server: number, stream: 'stdout' | 'stderr') =>
        rows
          .filter((r) => r.serverId === servers[server] && r.stream === stream)
          .reduce((m, r) => Math.max(m, r.byteOffset ?? 0), 0);
      expect(await events.resumeOffsets(ex, servers[0])).toEqual({
        stdout: last(0, 'stdout'),
        stderr: last(0, 'stderr'),
      });
      expect(last(0, 'stderr')).toBeGreaterThan(0);
      expect(await events.resumeOffsets(ex, uuid(39))).toEqual({ stdout: 0, stderr: 0 });
    });

    it('stores any JSON as a variable value', async () => {
      const vars = ds.getRepository(VariableEntity);
      const value = { s: 'it\'s "x"\n', n: 1.5, a: [null, false], u: '✓' };
      await vars.save({ userId: 'default', key: 'k', value, updatedAt: 1 });
      await vars.save({ userId: 'default', key: 'k', value: 'replaced', updatedAt: 2 });
      expect((await vars.findOneBy({ userId: 'default', key: 'k' }))!.value).toBe('replaced');
      await vars.save({ userId: 'other', key: 'k', value, updatedAt: 3 });
      expect((await vars.findOneBy({ userId: 'other', key: 'k' }))!.value).toEqual(value);
    });
  });
}

const sqliteDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-sqlite-'));
afterAll(() => fs.rmSync(sqliteDir, { recursive: true, force: true }));
repositoryContract('SQLite (file)', async () => `sqlite:${sqliteDir}/test.db`);

// The spec names a PostgreSQL server on 127.0.0.1:5432 for development and CI machines;
// where none answers, these suites are not registered (and the run says so).
const reachable = postgresReachableSync();
if (!reachable)
  console.warn('PostgreSQL on 127.0.0.1:5432 is not reachable: PostgreSQL suites not run');
if (reachable)
  describe('PostgreSQL', () => {
    const schemas: (() => Promise<void>)[] = [];
    afterAll(async () => {
      for (const drop of schemas) await drop();
    });

    repositoryContract('PostgreSQL', async () => {
      const s = await freshSchema();
      schemas.push(s.drop);
      return s.url;
    });

    it('boots the whole service on PostgreSQL and runs a job', async () => {
      const s = await freshSchema();
      schemas.push(s.drop);
      const sshd = await startSshd();
      const t = await startApp({ DATABASE_URL: s.url });
      try {
        const serverId = await registerServer(t, sshd, { baseDir: `${sshd.dir}/base` });
        const res = await t
          .http()
          .post('/v1/jobs')
          .set(t.auth)
          .send({
            script: { type: 'bash', content: 'echo on-postgres' },
            targets: { serverIds: [serverId] },
          });
        const ex = await waitForExecution(t, res.body.id);
        expect(ex.status).toBe('succeeded');
        const logs = await t.http().get(`/v1/executions/${res.body.id}/logs`).set(t.auth);
        expect(logs.body.entries.some((e: any) => e.text === 'on-postgres')).toBe(true);
        expect((await t.http().get('/health/ready')).body.info.database.status).toBe('up');
      } finally {
        await t.close();
        await sshd.stop();
      }
    });
  });
