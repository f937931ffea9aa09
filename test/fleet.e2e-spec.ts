import { freePort, SshdInstance, startSshd } from './support/sshd';
import { logsOf, registerServer, startApp, TestApp, waitForExecution } from './support/app';
import { alive, eventually } from './support/processes';
import { sample } from './support/metrics';

async function metric(t: TestApp, name: string, labels: string): Promise<number> {
  return sample((await t.http().get('/metrics')).text, name, labels);
}

describe('one job on many servers (real sshd)', () => {
  let sshds: SshdInstance[];
  let t: TestApp;
  /** server id → name, in registration order */
  const servers: { id: string; name: string }[] = [];
  let unreachableId: string;

  beforeAll(async () => {
    sshds = await Promise.all([0, 1, 2].map(() => startSshd({ maxSessions: 30 })));
    t = await startApp();
    for (let i = 0; i < 11; i++) {
      const sshd = sshds[i % 3];
      const name = `fleet-${String(i).padStart(2, '0')}`;
      const id = await registerServer(t, sshd, {
        name,
        baseDir: `${sshd.dir}/base-${i}`,
        tags: i < 4 ? ['fleet', 'web'] : ['fleet'],
      });
      servers.push({ id, name });
    }
    const port = await freePort(); // nothing listens there
    const res = await t
      .http()
      .post('/v1/servers')
      .set(t.auth)
      .send({
        name: 'fleet-11-dead',
        host: '127.0.0.1',
        port,
        username: 'root',
        password: 'x',
        tags: ['fleet'],
      });
    unreachableId = res.body.id;
    servers.push({ id: unreachableId, name: 'fleet-11-dead' });
    // Deploy the runners first, so the timeout below measures the scripts, not cold deploys
    // on a busy machine.
    const warm = await t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .send({
        script: { type: 'bash', content: 'true' },
        targets: { serverIds: servers.slice(0, 11).map((s) => s.id) },
      });
    expect((await waitForExecution(t, warm.body.id)).status).toBe('succeeded');
  });
  afterAll(async () => {
    await t?.close();
    await Promise.all((sshds ?? []).map((s) => s.stop()));
  });

  const submit = (body: Record<string, unknown>) =>
    t.http().post('/v1/jobs').set(t.auth).send(body);

  it('runs 12 targets in parallel: 3 fail, 1 times out, 1 is unreachable → partial, bounded by the slowest timeout', async () => {
    const failing = servers.slice(0, 3).map((s) => s.id);
    const slow = servers[3].id;
    const script = `case "$CRONIUM_SERVER_ID" in ${failing.join('|')}) echo "failing on purpose" >&2; exit 3;; ${slow}) sleep 6123;; esac; echo "hello from $CRONIUM_SERVER_ID"`;
    const started = Date.now();
    const res = await submit({
      script: { type: 'bash', content: script },
      targets: { tags: ['fleet'] },
      timeoutSeconds: 6,
    });
    expect(res.status).toBe(202);
    expect(res.body.targets).toHaveLength(12);
    const ex = await waitForExecution(t, res.body.id);
    const elapsed = Date.now() - started;
    expect(ex.status).toBe('partial');
    expect(ex.summary).toEqual({
      total: 12,
      succeeded: 7,
      failed: 4,
      timedOut: 1,
      cancelled: 0,
      skipped: 0,
    });
    const by = new Map(ex.targets.map((x: any) => [x.serverId, x]));
    for (const id of failing) expect(by.get(id)).toMatchObject({ status: 'failed', exitCode: 3 });
    expect(by.get(slow)).toMatchObject({ status: 'timed_out' });
    expect((by.get(unreachableId) as any).error.code).toBe('connect_failed');
    for (const s of servers.slice(4, 11))
      expect(by.get(s.id)).toMatchObject({ status: 'succeeded', exitCode: 0 });
    // parallel: the slowest target's timeout bounds the whole run (not the sum of 12 runs)
    expect(elapsed).toBeLessThan(6000 + 10000);
    expect(await eventually(async () => (await alive('sleep 6123')).length === 0, 5000)).toBe(true);

    // every line names its server; the text view prefixes [server-name], ordered by seq
    const logs = await logsOf(t, ex.id);
    expect(logs.every((l) => servers.some((s) => s.id === l.serverId))).toBe(true);
    const text = (
      await t.http().get(`/v1/executions/${ex.id}/logs?format=text&limit=10000`).set(t.auth)
    ).text;
    const lines = text.trim().split('\n');
    expect(lines).toHaveLength(logs.length);
    for (const s of servers.slice(4, 11)) expect(lines).toContain(`[${s.name}] hello from ${s.id}`);
    expect(lines).toContain(`[${servers[0].name}] failing on purpose`);
  });

  it('skips the targets not yet started once maxErrors is exceeded', async () => {
    const five = servers.slice(0, 5).map((s) => s.id);
    const res = await submit({
      script: {
        type: 'bash',
        content: `case "$CRONIUM_SERVER_ID" in ${five.join('|')}) exit 1;; esac; echo ok`,
      },
      targets: { serverIds: servers.slice(0, 8).map((s) => s.id) },
      concurrency: 1,
      maxErrors: 2,
    });
    const ex = await waitForExecution(t, res.body.id);
    expect(ex.summary).toMatchObject({ total: 8, failed: 3, skipped: 5, succeeded: 0 });
    expect(ex.targets.slice(0, 3).every((x: any) => x.status === 'failed')).toBe(true);
    expect(ex.targets.slice(3).every((x: any) => x.status === 'skipped')).toBe(true);
    expect(ex.status).toBe('failed');
  });

  it('understands maxErrors as a percentage', async () => {
    const res = await submit({
      script: {
        type: 'bash',
        content: `case "$CRONIUM_SERVER_ID" in ${servers[0].id}|${servers[1].id}) exit 1;; esac`,
      },
      targets: { serverIds: servers.slice(0, 10).map((s) => s.id) },
      concurrency: 1,
      maxErrors: '10%', // 1 of 10
    });
    const ex = await waitForExecution(t, res.body.id);
    expect(ex.summary).toMatchObject({ failed: 2, skipped: 8 });
  });

  it('with failFast cancels the running targets and leaves no remote process', async () => {
    const first = servers[0].id;
    const res = await submit({
      script: {
        type: 'bash',
        content: `if [ "$CRONIUM_SERVER_ID" = ${first} ]; then sleep 1; exit 9; fi; sleep 6124 & sleep 6125`,
      },
      targets: { serverIds: servers.slice(0, 6).map((s) => s.id) },
      maxErrors: 0,
      failFast: true,
      timeoutSeconds: 60,
    });
    const ex = await waitForExecution(t, res.body.id);
    expect(ex.targets.find((x: any) => x.serverId === first)).toMatchObject({
      status: 'failed',
      exitCode: 9,
    });
    expect(ex.summary).toMatchObject({ failed: 1, cancelled: 5 });
    expect(await eventually(async () => (await alive('sleep 612[45]')).length === 0, 8000)).toBe(
      true,
    );
  });

  it('targets exactly the tagged servers, de-duplicates ids and tags, and refuses an empty set', async () => {
    const res = await submit({
      script: { type: 'bash', content: 'true' },
      targets: { tags: ['web'], serverIds: [servers[0].id, servers[5].id] },
    });
    expect(res.status).toBe(202);
    const ids = res.body.targets.map((x: any) => x.serverId).sort();
    expect(ids).toEqual([...servers.slice(0, 4).map((s) => s.id), servers[5].id].sort());
    expect((await waitForExecution(t, res.body.id)).status).toBe('succeeded');

    const empty = await submit({
      script: { type: 'bash', content: 'true' },
      targets: { tags: ['nobody-has-this'] },
    });
    expect(empty.status).toBe(400);
    const none = await submit({
      script: { type: 'bash', content: 'true' },
      targets: { serverIds: [], tags: [] },
    });
    expect(none.status).toBe(400);
  });
});

describe('runner deployment across a fleet (real sshd)', () => {
  let sshds: SshdInstance[];
  let t: TestApp;
  beforeAll(async () => {
    sshds = await Promise.all([0, 1].map(() => startSshd({ maxSessions: 30 })));
    t = await startApp();
  });
  afterAll(async () => {
    await t?.close();
    await Promise.all((sshds ?? []).map((s) => s.stop()));
  });

  it('two concurrent jobs on the same fresh servers deploy the runner exactly once per server', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const sshd = sshds[i % 2];
      ids.push(
        await registerServer(t, sshd, { baseDir: `${sshd.dir}/deploy-${i}`, tags: ['pair'] }),
      );
    }
    const before = await metric(t, 'cronium_runner_deployments_total', 'result="success"');
    const body = { script: { type: 'bash', content: 'echo ok' }, targets: { tags: ['pair'] } };
    const [a, b] = await Promise.all([
      t.http().post('/v1/jobs').set(t.auth).send(body),
      t.http().post('/v1/jobs').set(t.auth).send(body),
    ]);
    const [ea, eb] = await Promise.all([
      waitForExecution(t, a.body.id),
      waitForExecution(t, b.body.id),
    ]);
    expect(ea.status).toBe('succeeded');
    expect(eb.status).toBe('succeeded');
    const after = await metric(t, 'cronium_runner_deployments_total', 'result="success"');
    expect(after - before).toBe(6);
    // a third job deploys nothing
    const c = await t.http().post('/v1/jobs').set(t.auth).send(body);
    const ec = await waitForExecution(t, c.body.id);
    expect(ec.targets.every((x: any) => x.phases.deployMs === 0)).toBe(true);
    expect(await metric(t, 'cronium_runner_deployments_total', 'result="success"')).toBe(after);
    expect(ids).toHaveLength(6);
  });
});

describe('many connections to one sshd with default limits (real sshd)', () => {
  let sshd: SshdInstance;
  let t: TestApp;
  beforeAll(async () => {
    // Default MaxStartups (10:30:100) and MaxSessions (10): nothing raised.
    sshd = await startSshd({ maxStartups: '10:30:100', maxSessions: 10 });
    t = await startApp();
  });
  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
  });

  it('paces 24 distinct handshakes to one host so none is dropped, and shares channels within MaxSessions', async () => {
    const keys = await Promise.all(Array.from({ length: 24 }, () => sshd.addClientKey('ed25519')));
    for (const [i, key] of keys.entries()) {
      await registerServer(t, sshd, {
        name: `own-key-${i}`,
        privateKey: key.privateKey,
        baseDir: `${sshd.dir}/k-${i}`,
        tags: ['own-keys'],
      });
    }
    // plus 12 records sharing one key: one pooled connection, channels bounded below MaxSessions
    for (let i = 0; i < 12; i++) {
      await registerServer(t, sshd, {
        name: `shared-${i}`,
        baseDir: `${sshd.dir}/s-${i}`,
        tags: ['own-keys'],
      });
    }
    const res = await t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .send({
        script: { type: 'bash', content: 'sleep 0.3; echo ok' },
        targets: { tags: ['own-keys'] },
        timeoutSeconds: 120,
      });
    const ex = await waitForExecution(t, res.body.id, 180000);
    const failed = ex.targets.filter((x: any) => x.status !== 'succeeded');
    expect(failed.map((x: any) => [x.serverName, x.error])).toEqual([]);
    expect(ex.summary.succeeded).toBe(36);
  });
});
