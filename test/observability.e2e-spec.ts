import { registerServer, startApp, TestApp, waitForExecution } from './support/app';
import { SshdInstance, startSshd } from './support/sshd';
import { sample } from './support/metrics';

describe('metrics, health and API docs', () => {
  let sshd: SshdInstance;
  let t: TestApp;
  let serverId: string;
  beforeAll(async () => {
    sshd = await startSshd();
    t = await startApp();
    serverId = await registerServer(t, sshd, { baseDir: `${sshd.dir}/base` });
  });
  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
  });

  const run = async (content: string) => {
    const res = await t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .send({ script: { type: 'bash', content }, targets: { serverIds: [serverId] } });
    return waitForExecution(t, res.body.id);
  };

  it('counts executions, targets, deployments, cache lookups and phases', async () => {
    const before = (await t.http().get('/metrics')).text;
    await run('echo one');
    await run('echo two');
    await run('exit 4');
    const after = (await t.http().get('/metrics')).text;
    const delta = (name: string, labels = '') =>
      sample(after, name, labels) - sample(before, name, labels);
    expect(delta('cronium_executions_total', 'status="succeeded"')).toBe(2);
    expect(delta('cronium_executions_total', 'status="failed"')).toBe(1);
    expect(delta('cronium_targets_total', 'status="succeeded"')).toBe(2);
    expect(delta('cronium_targets_total', 'status="failed"')).toBe(1);
    expect(delta('cronium_runner_deployments_total', 'result="success"')).toBe(1);
    expect(delta('cronium_runner_cache_total', 'result="miss"')).toBe(1);
    expect(delta('cronium_runner_cache_total', 'result="hit"')).toBe(2);
    expect(delta('cronium_execution_duration_seconds_count')).toBe(3);
    expect(delta('cronium_target_phase_duration_seconds_count', 'phase="run"')).toBe(3);
    expect(delta('cronium_tunnels_total', 'result="api",reason="none"')).toBe(3);
    expect(sample(after, 'cronium_ssh_connections')).toBeGreaterThanOrEqual(1);
    // every series says which replica it comes from
    const series = after.split('\n').filter((l) => l.startsWith('cronium_'));
    expect(series.length).toBeGreaterThan(10);
    for (const l of series) expect(l).toMatch(/replica_id="[^"]+"/);
    // no per-server label on any cronium series
    expect(after.split('\n').filter((l) => l.startsWith('cronium_') && /server/i.test(l))).toEqual(
      [],
    );
  });

  it('answers liveness and readiness without auth', async () => {
    const live = await t.http().get('/health/live');
    expect(live.status).toBe(200);
    expect(live.body.status).toBe('ok');
    const ready = await t.http().get('/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.body.info).toMatchObject({
      database: { status: 'up' },
      runner: { status: 'up', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) },
    });
  });

  it('serves an OpenAPI document describing every /v1 route', async () => {
    const doc = await t.http().get('/docs/json');
    expect(doc.status).toBe(200);
    const paths = Object.keys(doc.body.paths);
    for (const p of [
      '/v1/servers',
      '/v1/servers/{id}',
      '/v1/servers/{id}/check',
      '/v1/jobs',
      '/v1/executions',
      '/v1/executions/{id}',
      '/v1/executions/{id}/cancel',
      '/v1/executions/{id}/logs',
      '/v1/variables/{userId}/{key}',
    ]) {
      expect(paths).toContain(p);
    }
    expect(JSON.stringify(doc.body.components.schemas.CreateJobDto)).toContain('helperMode');
    // the execution routes say what they answer
    const ref = (p: string, method: string, code: string) =>
      JSON.stringify(doc.body.paths[p][method].responses[code].content['application/json'].schema);
    const view = '#/components/schemas/ExecutionView';
    expect(ref('/v1/jobs', 'post', '202')).toContain(view);
    expect(ref('/v1/executions/{id}', 'get', '200')).toContain(view);
    expect(ref('/v1/executions/{id}/rerun', 'post', '202')).toContain(view);
    expect(ref('/v1/executions', 'get', '200')).toContain('#/components/schemas/ExecutionPage');
    expect(ref('/v1/executions/{id}/logs', 'get', '200')).toContain('#/components/schemas/LogPage');
    const { ExecutionView, TargetView } = doc.body.components.schemas;
    expect(Object.keys(ExecutionView.properties)).toEqual(
      expect.arrayContaining(['id', 'status', 'rerunOf', 'reason', 'summary', 'targets']),
    );
    expect(Object.keys(TargetView.properties)).toEqual(
      expect.arrayContaining(['serverId', 'status', 'exitCode', 'error', 'batch', 'phases']),
    );
  });
});
