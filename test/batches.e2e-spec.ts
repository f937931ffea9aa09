/**
 * Rolling batches (`batch: {size, maxFailPercentage?, pauseSeconds?}`) against real sshd's:
 * batch after batch in target order, the rest skipped with the reason once a batch fails
 * more than its limit, cancel during a pause, batch numbers in views and websocket events,
 * and a restart between two batches.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import WebSocket from 'ws';
import { registerServer, startApp, TEST_TOKEN, TestApp, waitForExecution } from './support/app';
import { sample } from './support/metrics';
import { startServiceProcess } from './support/service-process';
import { SshdInstance, startSshd } from './support/sshd';

/** Every websocket update of an execution, replayed from its first event to its end. */
async function updatesOf(t: TestApp, executionId: string): Promise<any[]> {
  const url = t.url.replace(/^http/, 'ws') + '/v1/status';
  const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${TEST_TOKEN}` } });
  const updates: any[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no end event')), 30_000);
    ws.once('error', reject);
    ws.once('open', () =>
      ws.send(JSON.stringify({ event: 'subscribe', data: { executionId, afterSeq: 0 } })),
    );
    ws.on('message', (raw) => {
      const m = JSON.parse(raw.toString());
      if (m.event !== 'update') return;
      updates.push(m.data);
      if (m.data.type === 'end') {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  ws.close();
  return updates;
}

const ms = (iso: string) => new Date(iso).getTime();

/** Polls `pred` (every 25 ms, up to 30 s) until it holds. */
async function until(pred: () => Promise<boolean>, what = 'condition'): Promise<void> {
  for (let i = 0; !(await pred()); i++) {
    if (i > 1200) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The targets of an execution view by batch number, in target order. */
function byBatch(ex: any): any[][] {
  const out: any[][] = [];
  for (const t of ex.targets) (out[t.batch - 1] ??= []).push(t);
  return out;
}

describe('rolling batches (real sshd)', () => {
  let sshds: SshdInstance[];
  let t: TestApp;
  /** In registration order, which is the execution's target order. */
  const ids: string[] = [];

  beforeAll(async () => {
    sshds = await Promise.all([0, 1].map(() => startSshd({ maxSessions: 20 })));
    t = await startApp();
    for (let i = 0; i < 5; i++) {
      const sshd = sshds[i % 2];
      ids.push(
        await registerServer(t, sshd, {
          name: `batch-${i}`,
          baseDir: `${sshd.dir}/base-${i}`,
          tags: ['batches'],
        }),
      );
    }
  });
  afterAll(async () => {
    await t?.close();
    await Promise.all((sshds ?? []).map((s) => s.stop()));
  });

  const submit = async (body: Record<string, unknown>) => {
    const res = await t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .send({ targets: { serverIds: ids }, ...body });
    expect(res.status).toBe(202);
    return res.body;
  };

  it('the OpenAPI document describes `batch`', async () => {
    const { schemas } = (await t.http().get('/docs/json')).body.components;
    expect(JSON.stringify(schemas.CreateJobDto.properties.batch)).toContain('BatchDto');
    expect(schemas.BatchDto.required).toEqual(['size']);
    expect(schemas.BatchDto.properties).toMatchObject({
      maxFailPercentage: { type: 'integer', minimum: 0, maximum: 100 },
      pauseSeconds: { minimum: 0, maximum: 3600 },
    });
    expect(JSON.stringify(schemas.BatchDto.properties.size)).toContain('25%');
  });

  it('refuses a bad batch with a 400 naming the field, and makes no execution', async () => {
    const count = async () =>
      (await t.http().get('/v1/executions?limit=100').set(t.auth)).body.items.length;
    const before = await count();
    const bad: [unknown, RegExp][] = [
      [{ size: 0 }, /^batch\.size must be an integer from 1 to 10000 or a percentage/],
      [{ size: '0%' }, /^batch\.size /],
      [{ size: '101%' }, /^batch\.size /],
      [{}, /^batch\.size should not be null or undefined/],
      [
        { size: 1, maxFailPercentage: 101 },
        /^batch\.maxFailPercentage must not be greater than 100/,
      ],
      [{ size: 1, maxFailPercentage: -1 }, /^batch\.maxFailPercentage must not be less than 0/],
      [{ size: 1, pauseSeconds: 3601 }, /^batch\.pauseSeconds must not be greater than 3600/],
      [{ size: 1, surprise: true }, /^batch\.surprise: property surprise should not exist/],
      ['2', /^batch must be an object/],
    ];
    for (const [batch, message] of bad) {
      const res = await t
        .http()
        .post('/v1/jobs')
        .set(t.auth)
        .send({ script: { type: 'bash', content: 'true' }, targets: { serverIds: ids }, batch });
      expect([res.status, res.body.message]).toEqual([400, expect.stringMatching(message)]);
    }
    expect(await count()).toBe(before);
  });

  it('"40%" of 5 targets is batches of 2, 2 and 1, run one after the other in target order; views and status events say the batch', async () => {
    const created = await submit({
      script: { type: 'bash', content: 'sleep 0.4; echo "in $CRONIUM_SERVER_ID"' },
      batch: { size: '40%' },
    });
    expect(created.targets.map((x: any) => x.batch)).toEqual([1, 1, 2, 2, 3]);
    const ex = await waitForExecution(t, created.id);
    expect(ex.status).toBe('succeeded');
    expect(ex.targets.map((x: any) => x.serverId)).toEqual(ids);
    expect(ex.targets.map((x: any) => x.batch)).toEqual([1, 1, 2, 2, 3]);
    const batches = byBatch(ex);
    const gaps: number[] = [];
    for (let b = 1; b < batches.length; b++) {
      const previousEnd = Math.max(...batches[b - 1].map((x) => ms(x.finishedAt)));
      const start = Math.min(...batches[b].map((x) => ms(x.startedAt)));
      expect(start).toBeGreaterThanOrEqual(previousEnd);
      gaps.push(start - previousEnd);
    }
    console.log(`batch hand-off (last end → next start), ms: ${gaps.join(', ')}`);

    const updates = await updatesOf(t, created.id);
    const batchOf = new Map<string, number>(ex.targets.map((x: any) => [x.serverId, x.batch]));
    const statuses = updates.filter((u) => u.type === 'status');
    expect(statuses.length).toBeGreaterThanOrEqual(5 * 2);
    for (const u of statuses)
      expect([u.serverId, u.batch]).toEqual([u.serverId, batchOf.get(u.serverId)]);
    for (const u of updates.filter((x) => x.type === 'result')) {
      expect(u.batch).toBe(batchOf.get(u.serverId));
    }
    // The order of the events: no target of a batch moves before the batch ahead has ended.
    const firstMove = (b: number) =>
      statuses.find((u) => u.batch === b && u.status !== 'queued').seq;
    const lastEnd = (b: number) =>
      Math.max(
        ...statuses.filter((u) => u.batch === b && u.status === 'succeeded').map((u) => u.seq),
      );
    expect(firstMove(2)).toBeGreaterThan(lastEnd(1));
    expect(firstMove(3)).toBeGreaterThan(lastEnd(2));
  });

  it('a batch failing more than maxFailPercentage skips the batches after it, and the execution says why; at the limit it goes on', async () => {
    const before = sample(
      (await t.http().get('/metrics')).text,
      'cronium_batches_total',
      'outcome="halted"',
    );
    // batch 1 (ids 0, 1): one fails, 50%: at the limit, not over it. batch 2 (ids 2, 3):
    // both fail, 100%. batch 3 (id 4) never runs.
    const failing = [ids[0], ids[2], ids[3]];
    const created = await submit({
      script: {
        type: 'bash',
        content: `case "$CRONIUM_SERVER_ID" in ${failing.join('|')}) exit 4;; esac; echo ok`,
      },
      batch: { size: 2, maxFailPercentage: 50 },
    });
    const ex = await waitForExecution(t, created.id);
    expect(ex.status).toBe('partial');
    expect(ex.targets.map((x: any) => x.status)).toEqual([
      'failed',
      'succeeded',
      'failed',
      'failed',
      'skipped',
    ]);
    const why =
      'batch 2: 2 of 2 targets failed (100%), more than maxFailPercentage 50%; ' +
      'the targets of later batches were skipped';
    expect(ex.reason).toBe(why);
    expect(ex.targets[4].error).toEqual({ code: 'batch_failed', message: why });
    expect(ex.targets[4].startedAt).toBeNull();
    expect(ex.targets[0].error).toBeUndefined();
    expect(ex.summary).toMatchObject({ total: 5, succeeded: 1, failed: 3, skipped: 1 });

    const updates = await updatesOf(t, created.id);
    expect(updates.find((u) => u.type === 'summary')).toMatchObject({
      status: 'partial',
      reason: why,
    });
    expect(
      updates.filter((u) => u.type === 'status' && u.serverId === ids[4]).map((u) => u.status),
    ).toEqual(['skipped']);
    const after = sample(
      (await t.http().get('/metrics')).text,
      'cronium_batches_total',
      'outcome="halted"',
    );
    expect(after).toBe(before + 1);
  });

  it('maxErrors comes before the batch limit: once its budget is spent the rest are skipped without a batch reason', async () => {
    const created = await submit({
      script: { type: 'bash', content: `[ "$CRONIUM_SERVER_ID" != ${ids[0]} ]` },
      maxErrors: 0,
      batch: { size: 2, maxFailPercentage: 10 },
    });
    const ex = await waitForExecution(t, created.id);
    expect(ex.targets.map((x: any) => x.status)).toEqual([
      'failed',
      'succeeded',
      'skipped',
      'skipped',
      'skipped',
    ]);
    expect(ex.reason).toBeUndefined();
    expect(ex.targets[2].error).toBeUndefined();
  });

  it('a cancel during the pause between batches ends the execution: the batches not started are cancelled', async () => {
    const created = await submit({
      script: { type: 'bash', content: 'echo ok' },
      batch: { size: 2, pauseSeconds: 3600 },
    });
    // batch 1 has ended and the hour's pause has begun
    await until(async () => {
      const view = (await t.http().get(`/v1/executions/${created.id}`).set(t.auth)).body;
      return view.targets.filter((x: any) => x.status === 'succeeded').length === 2;
    }, 'the end of batch 1');
    const cancel = await t.http().post(`/v1/executions/${created.id}/cancel`).set(t.auth);
    expect(cancel.status).toBe(202);
    const ex = await waitForExecution(t, created.id, 30_000);
    expect(ex.status).toBe('cancelled');
    expect(ex.targets.map((x: any) => x.status)).toEqual([
      'succeeded',
      'succeeded',
      'cancelled',
      'cancelled',
      'cancelled',
    ]);
    expect(ex.targets.slice(2).every((x: any) => x.startedAt === null)).toBe(true);
  });

  it('with concurrency 1 a batch of 3 runs one target at a time, and still batch after batch', async () => {
    const created = await submit({
      script: { type: 'bash', content: 'sleep 0.2' },
      concurrency: 1,
      batch: { size: 3 },
    });
    const ex = await waitForExecution(t, created.id);
    expect(ex.status).toBe('succeeded');
    const runs = ex.targets.map((x: any) => [ms(x.startedAt), ms(x.finishedAt)]);
    for (let i = 1; i < runs.length; i++) expect(runs[i][0]).toBeGreaterThanOrEqual(runs[i - 1][1]);
    expect(ex.targets.map((x: any) => x.batch)).toEqual([1, 1, 1, 2, 2]);
  });
});

describe('rolling batches across a restart (real process, real sshd)', () => {
  let sshd: SshdInstance;
  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(async () => sshd?.stop());

  /**
   * Starts the service as a process, registers `n` servers on the sshd and runs `script`
   * (which may use $MARKER, a file each target appends its server id to) in `batch`; once
   * `killWhen` holds of the execution's view and the marker's lines so far, the process is
   * SIGKILLed and the service started again in-process on the same data dir. Returns the
   * final view, the server ids and the marker's lines.
   */
  async function killAndRestart(
    n: number,
    script: string,
    batch: Record<string, unknown>,
    killWhen: (view: any, ranLines: string[]) => boolean,
  ) {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-batches-restart-'));
    const marker = path.join(sshd.dir, `batches-ran-${Date.now()}`);
    const ran = () =>
      fs.existsSync(marker) ? fs.readFileSync(marker, 'utf8').trim().split('\n') : [];
    const svc = await startServiceProcess({
      dataDir,
      token: TEST_TOKEN,
      env: { NODE_ENV: 'test' },
      stdio: 'ignore',
    });
    let t: TestApp | null = null;
    try {
      await svc.waitReady();
      const servers: string[] = [];
      for (let i = 0; i < n; i++) {
        const name = `restart-${Date.now()}-${i}`;
        const r = await svc.registerServer(sshd, { name, baseDir: `${sshd.dir}/base-${name}` });
        servers.push(r.body.id);
      }
      const job = await svc.api('POST', '/v1/jobs', {
        script: { type: 'bash', content: `MARKER=${marker}; ${script}` },
        targets: { serverIds: servers },
        batch,
      });
      expect(job.status).toBe(202);
      await until(
        async () => killWhen((await svc.api('GET', `/v1/executions/${job.body.id}`)).body, ran()),
        'the moment to kill',
      );
      await svc.stop('SIGKILL');
      const before = ran();
      t = await startApp({ CRONIUM_DATA_DIR: dataDir });
      const ex = await waitForExecution(t, job.body.id);
      return { ex, servers, before, after: ran() };
    } finally {
      await svc.stop('SIGKILL');
      await t?.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }

  it('a service killed during the pause after batch 1: the next start runs batch 2 after the rest of the pause, and never batch 1 again', async () => {
    const pauseSeconds = 8;
    const { ex, servers, before, after } = await killAndRestart(
      2,
      'echo "$CRONIUM_SERVER_ID" >> "$MARKER"',
      { size: 1, pauseSeconds },
      (view) => view.targets[0].status === 'succeeded',
    );
    expect(before).toEqual([servers[0]]);
    expect(ex.status).toBe('succeeded');
    expect(ex.targets.map((x: any) => [x.batch, x.status])).toEqual([
      [1, 'succeeded'],
      [2, 'succeeded'],
    ]);
    // batch 1 ran once, before the restart; batch 2 once, after the pause
    expect(after).toEqual(servers);
    expect(ms(ex.targets[1].startedAt)).toBeGreaterThanOrEqual(
      ms(ex.targets[0].finishedAt) + pauseSeconds * 1000,
    );
  });

  it('a service killed while batch 2 runs: the next start re-attaches it, then runs batch 3; each target runs once', async () => {
    const { ex, servers, before, after } = await killAndRestart(
      3,
      'echo "$CRONIUM_SERVER_ID" >> "$MARKER"; ' +
        'if [ "$(wc -l < "$MARKER")" -eq 2 ]; then sleep 4; exit 7; fi',
      { size: 1 },
      // 'running' is stored when the runner starts, a moment before the script's first line
      // writes the marker: wait for both
      (view, lines) => view.targets[1].status === 'running' && lines.length === 2,
    );
    expect(before).toEqual(servers.slice(0, 2));
    expect(ex.targets.map((x: any) => [x.batch, x.status, x.exitCode])).toEqual([
      [1, 'succeeded', 0],
      [2, 'failed', 7],
      [3, 'succeeded', 0],
    ]);
    expect(ex.status).toBe('partial');
    expect(after).toEqual(servers);
    expect(ms(ex.targets[2].startedAt)).toBeGreaterThanOrEqual(ms(ex.targets[1].finishedAt));
  });
});
