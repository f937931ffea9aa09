/**
 * Re-running what failed (POST /v1/executions/:id/rerun) and finding executions and
 * servers (GET /v1/executions and GET /v1/servers filters), against a real sshd and the
 * real service on a SQLite file. The same filters on PostgreSQL: test/persistence.e2e-spec.ts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import {
  logsOf,
  registerServer,
  startApp,
  TestApp,
  waitForExecution,
  waitForTargetStatus,
} from './support/app';
import { sample } from './support/metrics';
import { SshdInstance, startSshd } from './support/sshd';

const SECRET = 'rerun-secret-7f3a91';

describe('re-run what failed, find executions and servers', () => {
  let sshd: SshdInstance;
  let t: TestApp;
  let ds: DataSource;
  let tmp: string;
  /** Servers named so that name order is a, b, c. */
  let a: string, b: string, c: string;

  beforeAll(async () => {
    sshd = await startSshd();
    t = await startApp();
    ds = t.app.get(DataSource);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-rerun-'));
    const base = `${sshd.dir}/base`;
    const tag = `r${Math.random().toString(36).slice(2, 8)}`;
    a = await registerServer(t, sshd, { name: `${tag}-a`, baseDir: base, tags: ['find', 'x'] });
    b = await registerServer(t, sshd, { name: `${tag}-b`, baseDir: base, tags: ['find'] });
    c = await registerServer(t, sshd, { name: `${tag}-c`, baseDir: base, tags: ['x'] });
  });

  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const count = async () => Number((await ds.query('SELECT COUNT(*) AS n FROM executions'))[0].n);
  const submit = async (body: Record<string, unknown>, key?: string, app = t) => {
    const req = app.http().post('/v1/jobs').set(app.auth);
    if (key) req.set('Idempotency-Key', key);
    const res = await req.send(body);
    expect([res.status, res.body]).toEqual([202, expect.anything()]);
    return res.body.id as string;
  };
  const rerun = (id: string, body: Record<string, unknown>, key?: string) => {
    const req = t.http().post(`/v1/executions/${id}/rerun`).set(t.auth);
    if (key) req.set('Idempotency-Key', key);
    return req.send(body);
  };
  const statusBy = (view: any) =>
    Object.fromEntries(view.targets.map((x: any) => [x.serverId, x.status]));
  /**
   * Until `flag` exists: `a` fails (exit 3) and `b` sleeps past its timeout; `c` succeeds.
   * Every run checks that it has the job's env and prints its input.
   */
  const flaky = (flag: string) => ({
    name: 'flaky',
    jobId: 'job-flaky',
    userId: 'user-flaky',
    eventId: 'event-flaky',
    helperMode: 'bundled',
    // long enough for `a` and `c` to end on a busy machine; `b` sleeps far past it
    timeoutSeconds: 10,
    env: { SECRET },
    input: { n: 7 },
    script: {
      type: 'bash',
      content: [
        `[ "$SECRET" = "${SECRET}" ] || { echo "env lost"; exit 9; }`,
        'echo "input=$(cronium.input)"',
        `if [ ! -e ${flag} ]; then`,
        `  [ "$CRONIUM_SERVER_ID" = "${a}" ] && exit 3`,
        `  [ "$CRONIUM_SERVER_ID" = "${b}" ] && sleep 600`,
        'fi',
        'echo ran-ok',
      ].join('\n'),
    },
    targets: { serverIds: [a, b, c] },
  });

  it('re-runs the failed and timed_out targets with the same job, linked by rerunOf', async () => {
    const flag = path.join(tmp, 'flag-1');
    const first = await waitForExecution(t, await submit(flaky(flag)));
    expect(statusBy(first)).toEqual({ [a]: 'failed', [b]: 'timed_out', [c]: 'succeeded' });
    fs.writeFileSync(flag, '');

    const res = await rerun(first.id, { only: 'failed' });
    expect(res.status).toBe(202);
    expect(res.body.rerunOf).toBe(first.id);
    expect(res.body.targets.map((x: any) => x.serverId).sort()).toEqual([a, b].sort());
    expect(JSON.stringify(res.body)).not.toContain(SECRET);
    const again = await waitForExecution(t, res.body.id);
    expect(again).toMatchObject({
      status: 'succeeded',
      rerunOf: first.id,
      name: 'flaky',
      jobId: 'job-flaky',
      userId: 'user-flaky',
      eventId: 'event-flaky',
    });
    expect(statusBy(again)).toEqual({ [a]: 'succeeded', [b]: 'succeeded' });
    const texts = (await logsOf(t, again.id)).map((e) => e.text);
    expect(texts.filter((x) => x === 'input={"n":7}')).toHaveLength(2);
    expect(texts.filter((x) => x === 'ran-ok')).toHaveLength(2);
    expect(JSON.stringify(again)).not.toContain(SECRET);

    // the list shows the link too, and the original has none
    const list = await t.http().get('/v1/executions?jobId=job-flaky&limit=200').set(t.auth);
    expect(list.status).toBe(200);
    const byId = new Map(list.body.items.map((x: any) => [x.id, x]));
    expect((byId.get(again.id) as any).rerunOf).toBe(first.id);
    expect((byId.get(first.id) as any).rerunOf).toBeNull();

    // only=all: every target of the original
    const all = await rerun(first.id, { only: 'all' });
    expect(all.status).toBe(202);
    expect(all.body.targets).toHaveLength(3);
    expect((await waitForExecution(t, all.body.id)).status).toBe('succeeded');

    // nothing failed: a 409 that makes nothing
    const before = await count();
    const none = await rerun(again.id, { only: 'failed', includeSkipped: true });
    expect(none.status).toBe(409);
    expect(none.body.message).toMatch(/nothing to re-run/);
    expect(await count()).toBe(before);
  });

  it('a 409 while the original runs; its cancelled targets are re-run afterwards', async () => {
    const flag = path.join(tmp, 'flag-2');
    const id = await submit({
      script: { type: 'bash', content: `[ -e ${flag} ] || sleep 30` },
      targets: { serverIds: [c] },
    });
    await waitForTargetStatus(t, id, 'running');
    const before = await count();
    const busy = await rerun(id, { only: 'all' });
    expect([busy.status, busy.body.message]).toEqual([409, expect.stringMatching(/still/)]);
    expect(await count()).toBe(before);

    expect((await t.http().post(`/v1/executions/${id}/cancel`).set(t.auth)).status).toBe(202);
    expect(statusBy(await waitForExecution(t, id))).toEqual({ [c]: 'cancelled' });
    fs.writeFileSync(flag, '');
    const res = await rerun(id, { only: 'failed' });
    expect(res.status).toBe(202);
    expect(statusBy(await waitForExecution(t, res.body.id))).toEqual({ [c]: 'succeeded' });
  });

  it('skipped targets come back only with includeSkipped', async () => {
    const flag = path.join(tmp, 'flag-3');
    const id = await submit({
      ...flaky(flag),
      timeoutSeconds: 30,
      concurrency: 1,
      maxErrors: 0,
    });
    const first = await waitForExecution(t, id);
    // `a` (first by name) fails; the budget of 0 errors skips the other two
    expect(statusBy(first)).toEqual({ [a]: 'failed', [b]: 'skipped', [c]: 'skipped' });
    fs.writeFileSync(flag, '');
    const failedOnly = await rerun(id, { only: 'failed' });
    expect(failedOnly.body.targets.map((x: any) => x.serverId)).toEqual([a]);
    const withSkipped = await rerun(id, { only: 'failed', includeSkipped: true });
    expect(withSkipped.body.targets.map((x: any) => x.serverId)).toEqual([a, b, c]);
    // the original's settings come along: concurrency 1, maxErrors 0
    const row = await ds.query(
      `SELECT request FROM executions WHERE id = '${withSkipped.body.id}'`,
    );
    expect(JSON.parse(row[0].request)).toMatchObject({
      concurrency: 1,
      maxErrors: 0,
      envNames: ['SECRET'],
      targets: { serverIds: [a, b, c] },
    });
    await waitForExecution(t, failedOnly.body.id);
    expect((await waitForExecution(t, withSkipped.body.id)).status).toBe('succeeded');
  });

  it('Idempotency-Key on a rerun returns the same execution; another body under it is a 422', async () => {
    const id = await submit({
      script: { type: 'bash', content: 'exit 4' },
      targets: { serverIds: [c] },
    });
    await waitForExecution(t, id);
    const key = `rerun-${Math.random()}`;
    const reruns = async () =>
      sample(
        (await t.http().get('/metrics')).text,
        'cronium_execution_reruns_total',
        'only="failed"',
      );
    const counted = await reruns();
    const one = await rerun(id, { only: 'failed' }, key);
    const two = await rerun(id, { only: 'failed' }, key);
    expect([one.status, two.status]).toEqual([202, 202]);
    expect(two.body.id).toBe(one.body.id);
    expect(await reruns()).toBe(counted + 1); // the replay made nothing, so counts nothing
    const before = await count();
    const other = await rerun(id, { only: 'all' }, key);
    expect(other.status).toBe(422);
    expect(await count()).toBe(before);
    await waitForExecution(t, one.body.id);
  });

  it('a server deleted since is a 404 naming it, as in a job, and nothing is made', async () => {
    const doomed = await registerServer(t, sshd, { baseDir: `${sshd.dir}/base` });
    const id = await submit({
      script: { type: 'bash', content: 'exit 5' },
      targets: { serverIds: [doomed, c] },
    });
    await waitForExecution(t, id);
    expect((await t.http().delete(`/v1/servers/${doomed}`).set(t.auth)).status).toBe(204);
    const before = await count();
    const res = await rerun(id, { only: 'failed' });
    expect(res.status).toBe(404);
    expect(res.body.message).toContain(doomed);
    expect(await count()).toBe(before);
    // an unknown execution is a 404 too
    const unknown = await rerun('00000000-0000-4000-8000-000000000000', { only: 'all' });
    expect(unknown.status).toBe(404);
  });

  it('with executor.keepJobForRerun off the job is cleared at the end and a rerun is a 409', async () => {
    const other = await startApp({ CRONIUM__EXECUTOR__KEEP_JOB_FOR_RERUN: 'false' });
    try {
      const srv = await registerServer(other, sshd, { baseDir: `${sshd.dir}/base` });
      const body = { script: { type: 'bash', content: 'exit 1' }, targets: { serverIds: [srv] } };
      const id = await submit(body, undefined, other);
      await waitForExecution(other, id);
      const db = other.app.get(DataSource);
      const row = await db.query(`SELECT payload FROM executions WHERE id = '${id}'`);
      expect(row[0].payload).toBeNull();
      const again = await other
        .http()
        .post(`/v1/executions/${id}/rerun`)
        .set(other.auth)
        .send({ only: 'failed' });
      expect([again.status, again.body.message]).toEqual([
        409,
        expect.stringMatching(/no longer stored/),
      ]);
    } finally {
      await other.close();
    }
  });

  describe('finding executions', () => {
    const ids: Record<string, string> = {};
    let t0: string;
    let t1: string;

    beforeAll(async () => {
      const job = (name: string, extra: Record<string, unknown>, serverIds = [a]) => ({
        name,
        script: { type: 'bash', content: name.startsWith('bad') ? 'exit 1' : 'true' },
        targets: { serverIds },
        ...extra,
      });
      t0 = new Date(Date.now() - 1000).toISOString();
      ids.deploy1 = await submit(job('deploy-web', { jobId: 'j-deploy', userId: 'u-ann' }, [a]));
      ids.deploy2 = await submit(job('deploy-db', { jobId: 'j-deploy', userId: 'u-bob' }, [b]));
      ids.pct = await submit(job('50%-off', { userId: 'u-ann', eventId: 'e-sale' }, [c]));
      ids.under = await submit(job('deploy_x', { userId: 'u-ann' }, [a, c]));
      ids.bad = await submit(job('bad-one', { jobId: 'j-bad', eventId: 'e-sale' }, [b]));
      for (const id of Object.values(ids)) await waitForExecution(t, id);
      t1 = new Date(Date.now() + 1000).toISOString();
    });

    const find = async (query: string) => {
      const res = await t.http().get(`/v1/executions?${query}`).set(t.auth);
      expect([query, res.status]).toEqual([query, 200]);
      return res.body as { items: any[]; nextCursor: string | null };
    };
    const found = async (query: string) => {
      const mine = new Set(Object.values(ids));
      const names = Object.fromEntries(Object.entries(ids).map(([k, v]) => [v, k]));
      return (await find(`${query}&limit=200`)).items
        .filter((x) => mine.has(x.id))
        .map((x) => names[x.id])
        .sort();
    };

    it('filters by each field, and every filter given must hold', async () => {
      expect(await found('jobId=j-deploy')).toEqual(['deploy1', 'deploy2']);
      expect(await found('userId=u-ann')).toEqual(['deploy1', 'pct', 'under']);
      expect(await found('eventId=e-sale')).toEqual(['bad', 'pct']);
      expect(await found(`serverId=${c}`)).toEqual(['pct', 'under']);
      expect(await found(`serverId=${c.toUpperCase()}`)).toEqual(['pct', 'under']);
      expect(await found('userId=u-ann&jobId=j-deploy')).toEqual(['deploy1']);
      expect(await found(`userId=u-ann&serverId=${a}&name=deploy`)).toEqual(['deploy1', 'under']);
      expect(await found('jobId=j-none')).toEqual([]);
    });

    it('status takes several values, repeated or comma-separated', async () => {
      // as they ended here ('bad' fails; the others succeed unless the host let them down)
      const statusOf: Record<string, string> = {};
      for (const [k, id] of Object.entries(ids))
        statusOf[k] = (await waitForExecution(t, id)).status;
      const withStatus = (...st: string[]) =>
        Object.keys(ids)
          .filter((k) => st.includes(statusOf[k]))
          .sort();
      expect(statusOf.bad).toBe('failed');
      expect(await found('status=failed')).toEqual(withStatus('failed'));
      expect(await found('status=succeeded')).toEqual(withStatus('succeeded'));
      expect(await found('status=failed&status=succeeded')).toEqual(
        withStatus('failed', 'succeeded'),
      );
      expect(await found('status=failed,succeeded')).toEqual(withStatus('failed', 'succeeded'));
      expect(await found('status=partial,cancelled&userId=u-ann')).toEqual([]);
    });

    it('name is a literal, case-sensitive prefix: % and _ are no wildcards', async () => {
      expect(await found('name=deploy')).toEqual(['deploy1', 'deploy2', 'under']);
      expect(await found('name=deploy-')).toEqual(['deploy1', 'deploy2']);
      expect(await found('name=deploy_')).toEqual(['under']);
      expect(await found(`name=${encodeURIComponent('50%')}`)).toEqual(['pct']);
      expect(await found(`name=${encodeURIComponent('%')}`)).toEqual([]);
      expect(await found('name=_')).toEqual([]);
      expect(await found('name=DEPLOY')).toEqual([]);
    });

    it('createdAfter (inclusive) and createdBefore (exclusive) bound the creation time', async () => {
      expect(await found(`createdAfter=${t0}&createdBefore=${t1}`)).toEqual(
        Object.keys(ids).sort(),
      );
      expect(await found(`createdBefore=${t0}`)).toEqual([]);
      expect(await found(`createdAfter=${t1}`)).toEqual([]);
      const [row] = await ds.query(`SELECT "createdAt" FROM executions WHERE id = '${ids.pct}'`);
      const at = new Date(Number(row.createdAt)).toISOString();
      expect(await found(`createdAfter=${at}&name=50`)).toEqual(['pct']);
      expect(await found(`createdBefore=${at}&name=50`)).toEqual([]);
      const bad = await t
        .http()
        .get(`/v1/executions?createdAfter=${t1}&createdBefore=${t0}`)
        .set(t.auth);
      expect([bad.status, bad.body.message]).toEqual([400, expect.stringMatching(/createdAfter/)]);
    });

    it('pages filtered results with the opaque cursor, newest first, none twice', async () => {
      const seen: string[] = [];
      let query = 'userId=u-ann&limit=1';
      for (;;) {
        const page = await find(query);
        seen.push(...page.items.map((x) => x.id));
        if (!page.nextCursor) break;
        query = `userId=u-ann&limit=1&cursor=${page.nextCursor}`;
      }
      expect(seen).toEqual([ids.under, ids.pct, ids.deploy1]);
    });
  });

  describe('finding servers', () => {
    const names = async (query: string) => {
      const res = await t.http().get(`/v1/servers?${query}`).set(t.auth);
      expect([query, res.status]).toEqual([query, 200]);
      return (res.body as any[]).map((s) => s.id);
    };

    it('tag filters (exact, several, AND) and a name prefix; ?tag= no longer lists everyone', async () => {
      expect(await names('tag=find')).toEqual([a, b]);
      expect(await names('tag=find&tag=x')).toEqual([a]);
      expect(await names('tag=find,x')).toEqual([a]);
      expect(await names('tag=fin')).toEqual([]);
      expect(await names('tag=no-such-tag')).toEqual([]);
      const prefix = (await t.http().get(`/v1/servers/${a}`).set(t.auth)).body.name.slice(0, -1);
      expect(await names(`name=${prefix}`)).toEqual([a, b, c]);
      expect(await names(`name=${prefix}&tag=x`)).toEqual([a, c]);
    });

    it('is still a plain array; with limit, X-Next-Cursor leads to the next page', async () => {
      const res = await t.http().get('/v1/servers').set(t.auth);
      expect(Array.isArray(res.body)).toBe(true);
      expect(res.headers['x-next-cursor']).toBeUndefined();
      const seen: string[] = [];
      let query = 'tag=x&limit=1';
      for (;;) {
        const page = await t.http().get(`/v1/servers?${query}`).set(t.auth);
        expect(page.body.length).toBeLessThanOrEqual(1);
        seen.push(...page.body.map((s: any) => s.id));
        const next = page.headers['x-next-cursor'];
        if (!next) break;
        query = `tag=x&limit=1&cursor=${next}`;
      }
      expect(seen).toEqual([a, c]);
    });
  });

  it('the OpenAPI document describes the rerun route and the new query parameters', async () => {
    const doc = (await t.http().get('/docs/json')).body;
    const params = (p: string) => doc.paths[p].get.parameters.map((x: any) => x.name).sort();
    expect(params('/v1/executions')).toEqual(
      [
        'status',
        'serverId',
        'jobId',
        'userId',
        'eventId',
        'name',
        'createdAfter',
        'createdBefore',
        'limit',
        'cursor',
      ].sort(),
    );
    expect(params('/v1/servers')).toEqual(['cursor', 'limit', 'name', 'tag']);
    const rerunOp = doc.paths['/v1/executions/{id}/rerun'].post;
    expect(Object.keys(rerunOp.responses)).toEqual(expect.arrayContaining(['202', '404', '409']));
    const schema = JSON.stringify(doc.components.schemas.RerunDto);
    expect(schema).toContain('includeSkipped');
    expect(doc.components.schemas.RerunDto.required).toEqual(['only']);
  });

  it('an unknown query parameter is a 400 on /v1 routes that take none; the probes ignore it', async () => {
    const before = await count();
    for (const [method, p] of [
      ['get', `/v1/servers/${a}?x=1`],
      ['delete', `/v1/servers/${a}?force=1`],
      ['post', '/v1/jobs?dryRun=1'],
      ['get', '/v1/servers?tags=find'],
      ['get', '/v1/executions?server=1'],
    ] as const) {
      const res = await t.http()[method](p).set(t.auth).send({});
      expect([p, res.status]).toEqual([p, 400]);
      expect(res.body.message).toMatch(/query parameter|should not exist/);
    }
    expect((await t.http().get(`/v1/servers/${a}`).set(t.auth)).status).toBe(200);
    expect(await count()).toBe(before);
    expect((await t.http().get('/health/live?x=1')).status).toBe(200);
  });
});
