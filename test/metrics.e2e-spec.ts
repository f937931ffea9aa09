import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hasSeries, sample, samples } from './support/metrics';
import { REPO_ROOT, ServiceProcess, startServiceProcess } from './support/service-process';
import { SshdInstance, startSshd } from './support/sshd';

/** `promtool <args>` (Debian's prometheus package, installed by scripts/test.sh). */
function promtool(args: string[], input?: string) {
  const r = spawnSync('promtool', args, { input, encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw r.error;
  return { status: r.status, output: (r.stdout + r.stderr).trim() };
}

/** The label sets a user can graph from the first scrape on, before anything happened. */
const KNOWN: [string, string[]][] = [
  [
    'cronium_executions_total',
    ['succeeded', 'failed', 'partial', 'cancelled'].map((s) => `status="${s}"`),
  ],
  [
    'cronium_targets_total',
    ['succeeded', 'failed', 'timed_out', 'cancelled', 'skipped'].map((s) => `status="${s}"`),
  ],
  ['cronium_runner_cache_total', ['hit', 'miss', 'stale', 'vanished'].map((r) => `result="${r}"`)],
  ['cronium_runner_deployments_total', ['result="success"', 'result="failure"']],
  [
    'cronium_tunnels_total',
    [
      'result="api",reason="none"',
      'result="fallback",reason="tunnel"',
      'result="failed",reason="tunnel"',
      'result="failed",reason="connection_lost"',
    ],
  ],
  ['cronium_ssh_jump_tunnels_total', ['result="opened"', 'result="failed"']],
  [
    'cronium_ssh_connect_failures_total',
    ['connect_failed', 'auth_failed', 'host_key_mismatch'].map((c) => `code="${c}"`),
  ],
  ['cronium_batches_total', ['outcome="passed"', 'outcome="halted"']],
  ['cronium_execution_reruns_total', ['only="failed"', 'only="all"']],
  [
    'cronium_notification_deliveries_total',
    ['delivered', 'retrying', 'failed'].map((r) => `result="${r}"`),
  ],
  [
    'cronium_retention_deleted_total',
    ['executions', 'targets', 'events', 'notifications', 'notification_attempts'].map(
      (k) => `kind="${k}"`,
    ),
  ],
  [
    'cronium_target_phase_duration_seconds_count',
    ['connect', 'deploy', 'tunnel', 'run'].map((p) => `phase="${p}"`),
  ],
];

const emptyLabels = (text: string) =>
  samples(text)
    .filter((s) => [...s.labels.values()].includes(''))
    .map((s) => s.name);

describe('Prometheus exposition of the built service', () => {
  let sshd: SshdInstance;
  let svc: ServiceProcess;
  let serverId: string;
  let fresh: string;

  const scrape = async () => {
    const res = await fetch(`${svc.base}/metrics`); // no token: /metrics is public
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain;.*version=0\.0\.4/);
    return res.text();
  };

  const run = async (content: string) => {
    const res = await svc.api('POST', '/v1/jobs', {
      script: { type: 'bash', content },
      targets: { serverIds: [serverId] },
    });
    expect(res.status).toBe(202);
    return svc.waitForExecution(res.body.id, { timeoutMs: 60_000 });
  };

  beforeAll(async () => {
    sshd = await startSshd();
    svc = await startServiceProcess({ env: { NODE_ENV: 'test' } });
    await svc.waitReady();
    fresh = await scrape();
    serverId = (await svc.registerServer(sshd, { baseDir: `${sshd.dir}/base` })).body.id;
  });
  afterAll(async () => {
    await svc?.stop();
    await sshd?.stop();
  });

  it('shows every known label set of the counters at 0 before anything happened', () => {
    const missing = KNOWN.flatMap(([name, sets]) =>
      sets.filter((l) => !hasSeries(fresh, name, l)).map((l) => `${name}{${l}}`),
    );
    expect(missing).toEqual([]);
    const nonZero = KNOWN.flatMap(([name, sets]) =>
      sets.filter((l) => sample(fresh, name, l) !== 0).map((l) => `${name}{${l}}`),
    );
    expect(nonZero).toEqual([]);
    expect(emptyLabels(fresh)).toEqual([]);
  });

  describe('after real jobs over sshd', () => {
    let after: string;
    beforeAll(async () => {
      expect((await run('echo ok')).status).toBe('succeeded');
      expect((await run('exit 3')).status).toBe('failed');
      after = await scrape();
    });

    it('counts them, with no empty label value, and promtool check metrics passes', () => {
      expect(sample(after, 'cronium_executions_total', 'status="succeeded"')).toBe(1);
      expect(sample(after, 'cronium_executions_total', 'status="failed"')).toBe(1);
      expect(sample(after, 'cronium_tunnels_total', 'result="api",reason="none"')).toBe(2);
      expect(sample(after, 'cronium_runner_cache_total', 'result="miss"')).toBe(1);
      expect(sample(after, 'cronium_runner_cache_total', 'result="hit"')).toBe(1);
      expect(emptyLabels(after)).toEqual([]);
      // prom-client's gauges with a counter suffix were what promtool rejected (exit 3)
      expect(after).not.toMatch(/^nodejs_active_\w+_total/m);
      expect(after).toMatch(/^nodejs_active_handles\{/m);
      expect(promtool(['check', 'metrics'], after)).toEqual({ status: 0, output: '' });
    });

    it('docs/grafana-dashboard.json graphs only metrics /metrics has, in PromQL promtool accepts', () => {
      const dashboard = JSON.parse(
        fs.readFileSync(path.join(REPO_ROOT, 'docs/grafana-dashboard.json'), 'utf8'),
      );
      const exprs: string[] = dashboard.panels.flatMap((p: any) =>
        p.targets.map((t: any) => t.expr),
      );
      const variables: string[] = dashboard.templating.list
        .filter((v: any) => v.type === 'query')
        .map((v: any) => v.query.query);
      const exposed = new Set(samples(after).map((s) => s.name));
      const referenced = [...exprs, ...variables].flatMap((e) =>
        [...e.matchAll(/\b(?:cronium|nodejs|process)_[a-z0-9_]+/g)].map((m) => m[0]),
      );
      expect(referenced.filter((name) => !exposed.has(name))).toEqual([]);
      // the key series the dashboard is for
      const all = exprs.join('\n');
      for (const needle of [
        'cronium_executions_total',
        'histogram_quantile(0.95, sum by (le) (rate(cronium_execution_duration_seconds_bucket',
        'histogram_quantile(0.95, sum by (le, phase) (rate(cronium_target_phase_duration_seconds_bucket',
        'cronium_runner_cache_total{replica_id=~"$replica",result="hit"}',
        'cronium_ssh_connections',
        'cronium_tunnels_total',
        'cronium_websocket_subscribers',
      ])
        expect(all).toContain(needle);

      // Each expression as a recording rule, Grafana's variables replaced by what they stand
      // for, so promtool parses it as PromQL (YAML is a superset of JSON).
      const rules = {
        groups: [
          {
            name: 'dashboard',
            rules: exprs.map((e, i) => ({
              record: `dashboard_expr_${i}`,
              expr: e.replaceAll('$__rate_interval', '5m').replaceAll('$replica', '.*'),
            })),
          },
        ],
      };
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-dash-')), 'r.yml');
      fs.writeFileSync(file, JSON.stringify(rules));
      try {
        const checked = promtool(['check', 'rules', file]);
        expect(checked.output).toContain(`SUCCESS: ${exprs.length} rules found`);
        expect(checked.status).toBe(0);
      } finally {
        fs.rmSync(path.dirname(file), { recursive: true, force: true });
      }
    });
  });
});
