/**
 * `npm run bench jump`: servers behind a jump host (ProxyJump), in two parts.
 *
 * 1. Connect time (the pool in this process, no service): BENCH_SAMPLES cold connects
 *    each, interleaved, to one target sshd: direct; through the jump with the jump
 *    connection already pooled (the shared case); through the jump with both cold.
 * 2. N targets behind one jump (BENCH_N, default 50): one `echo ok` job through the
 *    service (cold: fresh service; warm: median of BENCH_REPEAT runs) against
 *    `parallel-ssh -x '-F cfg' -O ProxyJump=jump`, same hosts, parallelism N, same run.
 *    pssh reuses nothing: every run opens N connections to the jump and N to the targets.
 *    Baselines in the same run: the same N endpoints directly, through cronium (their own
 *    server records and runners) and through parallel-ssh.
 *
 * The N endpoints are (address, port) pairs on K target sshds listening on 127.0.0.1 …
 * 127.0.0.A; the service is given them as the jump host sees them. User: root (the
 * harness's default user); one client key authorized on every sshd.
 */
import 'reflect-metadata';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { SshEndpoint } from '../src/ssh/ssh.types';
import { REPO_ROOT } from '../test/support/service-process';
import { endpointOf, SshdInstance, startSshd } from '../test/support/sshd';
import {
  envCount,
  machineEnv,
  median,
  nowMs,
  onCleanup,
  printTable,
  psshArgs,
  runBench,
  runCmd,
  startService,
  stats,
  writeResults,
} from './support';

const SAMPLES = envCount('BENCH_SAMPLES', 20);
const N = envCount('BENCH_N', 50);
const REPEAT = envCount('BENCH_REPEAT', 3);
const K = envCount('BENCH_SSHD', 5);

// The pool as built (dist/, whose config loader finds config/default.yaml), as the service runs it.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const dist = (m: string) => require(path.join(REPO_ROOT, 'dist', m));
const { loadConfig } = dist('config/load-config') as typeof import('../src/config/load-config');
const { MetricsService } = dist(
  'metrics/metrics.service',
) as typeof import('../src/metrics/metrics.service');
const { SshPool } = dist('ssh/ssh-pool.service') as typeof import('../src/ssh/ssh-pool.service');
type SshPool = InstanceType<typeof SshPool>;

runBench(async () => {
  const started = Date.now();
  const loadAtStart = os.loadavg();
  const benchDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-bench-jump-'));
  onCleanup('bench dir', () => fs.rmSync(benchDir, { recursive: true, force: true }));
  const addrs = Math.ceil(N / K);
  const extra = Array.from({ length: addrs - 1 }, (_, i) => `ListenAddress 127.0.0.${i + 2}`);
  const jump = await startSshd({ maxStartups: '200:30:400' });
  onCleanup('jump sshd', () => jump.stop());
  const targets: SshdInstance[] = [];
  for (let k = 0; k < K; k++) {
    const s = await startSshd({ extraConfig: extra.join('\n'), maxSessions: 30 });
    onCleanup(`sshd ${s.port}`, () => s.stop());
    fs.appendFileSync(path.join(s.dir, 'authorized_keys'), jump.key.publicKey + '\n');
    targets.push(s);
  }
  const eps = Array.from({ length: N }, (_, i) => ({
    host: `127.0.0.${1 + Math.floor(i / K)}`,
    sshd: targets[i % K],
  }));

  // ---- 1. connect time -------------------------------------------------------------------
  const config = loadConfig({ NODE_ENV: 'development', CRONIUM_DATA_DIR: benchDir });
  const metrics = new MetricsService();
  const key = { privateKey: jump.key.privateKey };
  const jumpEp: SshEndpoint = endpointOf(jump, { serverId: 'jump', serverName: 'jump' });
  const direct: SshEndpoint = endpointOf(targets[0], { serverId: 't', serverName: 't', ...key });
  const behind: SshEndpoint = { ...direct, jump: jumpEp };
  const connectMs = async (pool: SshPool, ep: SshEndpoint) => {
    const t0 = nowMs();
    const lease = await pool.acquire(ep);
    const ms = nowMs() - t0;
    lease.release();
    return ms;
  };
  const shared = new SshPool(config, metrics);
  await connectMs(shared, jumpEp); // the jump connection, pooled from here on
  const samples = { direct: [] as number[], jumpWarm: [] as number[], jumpCold: [] as number[] };
  for (let i = 0; i < SAMPLES + 2; i++) {
    const fresh = new SshPool(config, metrics);
    const d = await connectMs(fresh, direct);
    await fresh.onApplicationShutdown();
    shared.evictServer('t');
    const w = await connectMs(shared, behind);
    shared.evictServer('t');
    const cold = new SshPool(config, metrics);
    const c = await connectMs(cold, behind);
    await cold.onApplicationShutdown();
    if (i < 2) continue; // warm-up (page cache, JIT)
    samples.direct.push(d);
    samples.jumpWarm.push(w);
    samples.jumpCold.push(c);
  }
  await shared.onApplicationShutdown();
  const connect = {
    direct: stats(samples.direct),
    behindJumpPooled: stats(samples.jumpWarm),
    behindJumpCold: stats(samples.jumpCold),
  };

  // ---- 2. N targets behind one jump: cronium vs parallel-ssh -J ----------------------------
  const svc = await startService();
  const jr = await svc.registerServer(jump, { name: 'jump' });
  for (let i = 0; i < N; i++) {
    const e = eps[i];
    const baseDir = path.join(e.sshd.dir, `base-${i}`);
    await svc.registerServer(e.sshd, {
      name: `behind-${i}`,
      host: e.host,
      ...key,
      baseDir,
      tags: ['jump'],
      jumpServerId: jr.body.id,
    });
    // The same endpoint directly, for the same-run baseline (own runner, own connection).
    await svc.registerServer(e.sshd, {
      name: `direct-${i}`,
      host: e.host,
      ...key,
      baseDir: `${baseDir}-direct`,
      tags: ['direct'],
    });
  }
  const croniumRun = async (tag: string) => {
    const t0 = nowMs();
    const res = await svc.api('POST', '/v1/jobs', {
      script: { type: 'bash', content: 'echo ok' },
      targets: { tags: [tag] },
      concurrency: N,
    });
    if (res.status !== 202) throw new Error(`POST /v1/jobs: ${res.status}`);
    const ex = await svc.waitForExecution(res.body.id, { pollMs: 5 });
    const ms = nowMs() - t0;
    const ok = ex.targets.filter((t: any) => t.status === 'succeeded').length;
    const phases = Object.fromEntries(
      ['connectMs', 'deployMs', 'tunnelMs', 'runMs'].map((k) => {
        const v = ex.targets.map((t: any) => t.phases?.[k]).filter((x: any) => x != null);
        return [k, v.length ? { p50: median(v), max: Math.max(...v) } : null];
      }),
    );
    return { ms, ok, phases };
  };

  const knownHosts = path.join(benchDir, 'known_hosts');
  fs.writeFileSync(
    knownHosts,
    [`[127.0.0.1]:${jump.port} ${jump.hostPublicKey}`]
      .concat(eps.map((e) => `[${e.host}]:${e.sshd.port} ${e.sshd.hostPublicKey}`))
      .join('\n') + '\n',
  );
  // ProxyJump's own ssh gets -F but not -o: the config file carries what both hops need.
  const cfg = path.join(benchDir, 'ssh_config');
  fs.writeFileSync(
    cfg,
    [
      'Host *',
      `  IdentityFile ${jump.key.privateKeyPath}`,
      '  IdentitiesOnly yes',
      '  BatchMode yes',
      '  StrictHostKeyChecking yes',
      `  UserKnownHostsFile ${knownHosts}`,
      '  GSSAPIAuthentication no',
      '  LogLevel ERROR',
    ].join('\n') + '\n',
  );
  const hostsFile = path.join(benchDir, 'hosts');
  fs.writeFileSync(hostsFile, eps.map((e) => `root@${e.host}:${e.sshd.port}\n`).join(''));
  const psshRun = async (viaJump: boolean) => {
    const args = psshArgs(
      hostsFile,
      N,
      [`ProxyJump=root@127.0.0.1:${jump.port}`],
      `${jump.key.privateKeyPath}`,
    );
    args.splice(args.length - 2, 0, '-x', `-F ${cfg}`);
    if (!viaJump) args.splice(args.indexOf(`ProxyJump=root@127.0.0.1:${jump.port}`) - 1, 2);
    const r = await runCmd('parallel-ssh', args);
    const ok = r.stdout.split('\n').filter((l) => /\[SUCCESS\]/.test(l)).length;
    if (ok !== N)
      console.error(
        r.stdout
          .split('\n')
          .filter((l) => /FAILURE|Stderr/.test(l))
          .slice(0, 5)
          .join('\n'),
      );
    return { ms: r.ms, ok };
  };

  const runs = {
    croniumDirect: [] as any[],
    cronium: [] as any[],
    psshDirect: [] as any[],
    pssh: [] as any[],
  };
  for (let i = 0; i <= REPEAT; i++) {
    runs.croniumDirect.push(await croniumRun('direct'));
    runs.cronium.push(await croniumRun('jump'));
    runs.psshDirect.push(await psshRun(false));
    runs.pssh.push(await psshRun(true));
  }
  const summary = (rs: { ms: number; ok: number }[]) => ({
    coldMs: rs[0].ms,
    warmP50: median(rs.slice(1).map((r) => r.ms)),
    ok: rs.map((r) => r.ok),
  });
  const fleet = Object.fromEntries(Object.entries(runs).map(([k, rs]) => [k, summary(rs)]));

  const f = (x: number | null) => (x === null ? '-' : x.toFixed(1));
  console.log(`\nconnect to one target, ${SAMPLES} cold connects each (ms)\n`);
  printTable(
    ['path', 'p50', 'p95', 'min', 'max'],
    Object.entries(connect).map(([k, s]) => [k, f(s.p50), f(s.p95), f(s.min), f(s.max)]),
    1,
  );
  console.log(`\n${N} targets behind one jump, \`echo ok\`, parallelism ${N} (ms)\n`);
  printTable(
    ['tool', 'cold', `warm p50 (${REPEAT})`, 'hosts ok per run'],
    Object.entries(fleet).map(([k, s]) => [k, f(s.coldMs), f(s.warmP50), s.ok.join(',')]),
    1,
  );
  for (const [i, r] of [...runs.croniumDirect, ...runs.cronium].entries()) {
    const ph = Object.entries(r.phases)
      .map(([k, v]: [string, any]) => `${k} ${v ? `${f(v.p50)}/${f(v.max)}` : '-'}`)
      .join(', ');
    const which = i <= REPEAT ? `direct run ${i + 1}` : `jump run ${i - REPEAT}`;
    console.log(`cronium ${which} phases (p50/max over targets): ${ph}`);
  }
  writeResults('jump', started, {
    params: { samples: SAMPLES, n: N, repeat: REPEAT, sshd: K, user: 'root' },
    env: { node: process.version, ...machineEnv(loadAtStart) },
    units: 'ms',
    results: { connect, fleet, runs },
  });
});
