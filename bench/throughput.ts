/**
 * `npm run bench throughput`: jobs per second of one-target `echo ok` (bash) jobs with
 * BENCH_SUBMITTERS (20) concurrent submitters, on 1 server and on K (10) servers, and the
 * same number of `echo ok` runs through OpenSSH, on the same sshd's, in the same run:
 *
 *   cronium        each submitter: POST /v1/jobs → GET /v1/executions/:id?wait=60 (the
 *                  long-poll) until final, then the next job; BENCH_JOBS jobs in all
 *   ssh-mux xP     P workers, each `ssh -o ControlMaster=auto … 'echo ok'` over the server's
 *                  established master connection, then the next (P = 8 by default)
 *   pssh -p P      `parallel-ssh -p P -i` over a hosts file of BENCH_JOBS lines (the servers
 *                  round-robin): a new connection per run (P = the number of submitters)
 *
 * Also the service's CPU per job (utime+stime of its process, /proc/<pid>/stat, before and
 * after the measured jobs) and the machine's busy share. See bench/README.md.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isFinal, ServiceProcess } from '../test/support/service-process';
import { ensureTestUser, SshdInstance, startSshd } from '../test/support/sshd';
import {
  cpuMsOf,
  ensureTools,
  envCount,
  envList,
  idsOf,
  machineEnv,
  machineJiffies,
  median,
  nowMs,
  onCleanup,
  opensshVersion,
  printTable,
  psshArgs,
  runBench,
  runCmd,
  startService,
  stats,
  writeResults,
} from './support';

const JOBS = envCount('BENCH_JOBS', 400); // per tool, scenario and round
const SUBMITTERS = envCount('BENCH_SUBMITTERS', 20);
const K = envCount('BENCH_SSHD', 10); // servers (sshd processes) in the wide scenario
const MUX_PARALLEL = envList('BENCH_MUX_PARALLEL', [8]);
const PSSH_PARALLEL = envCount('BENCH_PSSH_PARALLEL', SUBMITTERS);
const ROUNDS = envCount('BENCH_ROUNDS', 2); // measured runs per tool and scenario
const WARMUP = envCount('BENCH_WARMUP', 40); // untimed cronium jobs per scenario
const MAX_SESSIONS = envCount('BENCH_MAX_SESSIONS', 10); // sshd MaxSessions (OpenSSH default)
const SSH = '/usr/bin/ssh';
const GOAL_JOBS_PER_S = 150;
const GOAL_CPU_MS = 5;

interface RunResult {
  tool: string;
  ms: number;
  jobs: number;
  jobsPerSec: number;
  /** Service CPU (user+system) over the run / jobs; cronium only. */
  cpuMsPerJob: number | null;
  /** Share of all cores busy during the run (/proc/stat), in %. */
  machineBusyPct: number;
  /** Per-job latency, ms: cronium POST → final GET; ssh-mux spawn → exit. */
  latency: ReturnType<typeof stats> | null;
  failures: string[];
}

interface Endpoint {
  sshd: SshdInstance;
  baseDir: string;
  serverId: string;
}

async function main(): Promise<void> {
  const started = Date.now();
  const loadAtStart = os.loadavg();
  ensureTools([['parallel-ssh', 'pssh']]);
  for (const p of MUX_PARALLEL) {
    // One master connection per server carries all P sessions of the 1-server case.
    if (p > MAX_SESSIONS)
      throw new Error(
        `BENCH_MUX_PARALLEL ${p} needs BENCH_MAX_SESSIONS >= ${p} (sshd MaxSessions)`,
      );
  }
  const benchDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-bench-throughput-'));
  onCleanup('bench dir', () => fs.rmSync(benchDir, { recursive: true, force: true }));

  // --- sshd's and the user ---------------------------------------------------------------
  const user = (await ensureTestUser()).username;
  const { uid, gid } = idsOf(user);
  const sshds: SshdInstance[] = [];
  for (let k = 0; k < K; k++) {
    const s = await startSshd({ maxSessions: MAX_SESSIONS, maxStartups: '200:30:400' });
    onCleanup(`sshd ${s.port}`, () => s.stop());
    sshds.push(s);
  }
  // One client key for every sshd and tool (authorized_keys is shared by all users).
  const keyFile = path.join(benchDir, 'client_key');
  fs.copyFileSync(sshds[0].key.privateKeyPath!, keyFile);
  fs.chmodSync(keyFile, 0o600);
  for (const s of sshds.slice(1))
    fs.appendFileSync(path.join(s.dir, 'authorized_keys'), sshds[0].key.publicKey + '\n');
  const knownHosts = path.join(benchDir, 'known_hosts');
  fs.writeFileSync(
    knownHosts,
    sshds.map((s) => `[127.0.0.1]:${s.port} ${s.hostPublicKey}\n`).join(''),
  );

  // Options every OpenSSH run gets (as in fanout and warm-latency).
  const sshOpts = [
    'BatchMode=yes',
    'StrictHostKeyChecking=yes',
    `UserKnownHostsFile=${knownHosts}`,
    'GSSAPIAuthentication=no',
    'LogLevel=ERROR',
  ];
  const controlPath = path.join(benchDir, 'cm-%C');
  // prettier-ignore
  const muxArgs = (s: SshdInstance) => [
    '-F', '/dev/null',
    ...sshOpts.flatMap((o) => ['-o', o]),
    '-o', 'ControlMaster=auto',
    '-o', `ControlPath=${controlPath}`,
    '-o', 'ControlPersist=300',
    '-i', keyFile,
    '-p', String(s.port),
    `${user}@127.0.0.1`,
  ];

  // --- the service -----------------------------------------------------------------------
  const svc = await startService();
  const eps: Endpoint[] = [];
  for (const [k, s] of sshds.entries()) {
    const baseDir = path.join(s.dir, `cronium-${user}`);
    fs.mkdirSync(baseDir, { mode: 0o700 });
    fs.chownSync(baseDir, uid, gid);
    const r = await svc.registerServer(s, {
      name: `tp-${k}`,
      username: user,
      privateKey: sshds[0].key.privateKey,
      baseDir,
    });
    eps.push({ sshd: s, baseDir, serverId: r.body.id });
  }

  // ControlMaster per server: started by a first run, checked, stopped on teardown.
  for (const e of eps) {
    const r = await runCmd(SSH, [...muxArgs(e.sshd), 'echo ok']);
    if (r.code !== 0 || r.stdout !== 'ok\n')
      throw new Error(`ssh-mux warm-up on ${e.sshd.port}: exit ${r.code}: ${r.stderr.trim()}`);
    onCleanup(`ControlMaster ${e.sshd.port}`, async () => {
      await runCmd(SSH, [...muxArgs(e.sshd).slice(0, -1), '-O', 'exit', `${user}@127.0.0.1`]);
    });
  }

  const scenarios = [
    { name: '1 server', eps: eps.slice(0, 1) },
    ...(K > 1 ? [{ name: `${K} servers`, eps }] : []),
  ];
  const tools = [
    'cronium',
    ...MUX_PARALLEL.map((p) => `ssh-mux x${p}`),
    `pssh -p ${PSSH_PARALLEL}`,
  ];
  const runTool = (tool: string, sc: Endpoint[], jobs: number): Promise<RunResult> => {
    if (tool === 'cronium') return croniumRun(svc, sc, jobs);
    if (tool.startsWith('ssh-mux')) return muxRun(sc, jobs, Number(/x(\d+)$/.exec(tool)![1]));
    return psshRun(sc, jobs);
  };

  console.error(
    `throughput: ${JOBS} jobs per run, ${SUBMITTERS} submitters, ${ROUNDS} rounds, ` +
      `${K} sshd (MaxSessions ${MAX_SESSIONS}), user ${user}, service ${svc.base}`,
  );
  const results: Record<string, Record<string, RunResult[]>> = {};
  for (const sc of scenarios) {
    results[sc.name] = Object.fromEntries(tools.map((t) => [t, []]));
    // warm-up: pooled connections (a second one per server once 8 channels are busy),
    // runners, standbys; one pssh run so its first start-up is not measured.
    const w = await croniumRun(svc, sc.eps, Math.max(WARMUP, sc.eps.length));
    if (w.failures.length) throw new Error(`cronium warm-up: ${w.failures.slice(0, 5).join('; ')}`);
    const wp = await psshRun(sc.eps, sc.eps.length);
    if (wp.failures.length) throw new Error(`pssh warm-up: ${wp.failures.slice(0, 5).join('; ')}`);
    for (let round = 0; round < ROUNDS; round++) {
      const order = tools.map((_, i) => tools[(i + round) % tools.length]);
      for (const t of order) {
        svc.assertRunning();
        const r = await runTool(t, sc.eps, JOBS);
        results[sc.name][t].push(r);
        console.error(
          `  ${sc.name} round ${round + 1}/${ROUNDS} ${t.padEnd(12)} ${r.jobsPerSec.toFixed(1).padStart(7)} jobs/s` +
            (r.cpuMsPerJob !== null ? `  service CPU ${r.cpuMsPerJob.toFixed(2)} ms/job` : '') +
            `  machine ${r.machineBusyPct.toFixed(0)} % busy` +
            (r.failures.length ? `  ${r.failures.length} FAILED` : ''),
        );
      }
    }
  }

  // --- report -----------------------------------------------------------------------------
  const f1 = (x: number | null) => (x === null ? '-' : x.toFixed(1));
  const f2 = (x: number | null) => (x === null ? '-' : x.toFixed(2));
  console.log(
    `\nthroughput of one-target \`echo ok\` jobs (bash), ${JOBS} per run, ${SUBMITTERS} cronium` +
      ` submitters (long-poll), median of ${ROUNDS} runs; load avg ${loadAtStart[0].toFixed(1)}` +
      ` → ${os.loadavg()[0].toFixed(1)}\n`,
  );
  const summary: Record<string, Record<string, any>> = {};
  for (const sc of scenarios) {
    summary[sc.name] = {};
    const rows = tools.map((t) => {
      const runs = results[sc.name][t];
      const s = {
        jobsPerSec: median(runs.map((r) => r.jobsPerSec)),
        runs: runs.map((r) => Math.round(r.jobsPerSec * 10) / 10),
        cpuMsPerJob: median(runs.map((r) => r.cpuMsPerJob)),
        latencyP50: median(runs.map((r) => r.latency?.p50)),
        latencyP95: median(runs.map((r) => r.latency?.p95)),
        machineBusyPct: median(runs.map((r) => r.machineBusyPct)),
        failures: runs.reduce((a, r) => a + r.failures.length, 0),
      };
      summary[sc.name][t] = s;
      return [
        t,
        f1(s.jobsPerSec),
        s.runs.map((x) => x.toFixed(0)).join(' '),
        f2(s.cpuMsPerJob),
        f1(s.latencyP50),
        f1(s.latencyP95),
        f1(s.machineBusyPct),
        String(s.failures),
      ];
    });
    printTable(
      [
        sc.name,
        'jobs/s',
        'runs',
        'svc CPU ms/job',
        'job p50 ms',
        'job p95 ms',
        'machine busy %',
        'failed',
      ],
      rows,
      1,
    );
    const c = summary[sc.name].cronium.jobsPerSec as number;
    const ratios = tools
      .slice(1)
      .map((t) => `${(c / summary[sc.name][t].jobsPerSec).toFixed(2)}x ${t}`)
      .join(', ');
    console.log(`cronium jobs/s = ${ratios}\n`);
  }
  const ok = (b: boolean) => (b ? 'met' : 'NOT met');
  const one = summary['1 server'];
  const mux8 = one['ssh-mux x8']?.jobsPerSec ?? null;
  console.log('goals (1 server):');
  console.log(
    `  cronium ${f1(one.cronium.jobsPerSec)} jobs/s >= ${GOAL_JOBS_PER_S}: ` +
      ok(one.cronium.jobsPerSec >= GOAL_JOBS_PER_S),
  );
  if (mux8 !== null)
    console.log(
      `  cronium ahead of ssh-mux x8 (${f1(mux8)} jobs/s): ${ok(one.cronium.jobsPerSec > mux8)}`,
    );
  for (const sc of scenarios) {
    const cpu = summary[sc.name].cronium.cpuMsPerJob;
    console.log(
      `  service CPU per job (${sc.name}) ${f2(cpu)} ms <= ${GOAL_CPU_MS}: ${ok(cpu !== null && cpu <= GOAL_CPU_MS)}`,
    );
  }
  const failed = Object.values(results).flatMap((byTool) =>
    Object.entries(byTool).flatMap(([t, runs]) =>
      runs.flatMap((r) => r.failures.map((f) => `${t}: ${f}`)),
    ),
  );
  if (failed.length) {
    console.log(`\n${failed.length} failed runs:`);
    for (const f of failed.slice(0, 20)) console.log(`  ${f}`);
    process.exitCode = 1;
  }

  writeResults('throughput', started, {
    params: {
      jobs: JOBS,
      submitters: SUBMITTERS,
      sshd: K,
      muxParallel: MUX_PARALLEL,
      psshParallel: PSSH_PARALLEL,
      rounds: ROUNDS,
      warmup: WARMUP,
      maxSessions: MAX_SESSIONS,
      user,
      script: 'echo ok (bash)',
      sshOptions: sshOpts,
    },
    env: {
      node: process.version,
      openssh: opensshVersion(SSH),
      pssh: spawnSync('parallel-ssh', ['--version'], { encoding: 'utf8' }).stdout?.trim(),
      ...machineEnv(loadAtStart),
    },
    summary,
    results,
  });

  // ---------------------------------------------------------------------------------------
  /** Wall time of `fn`, with the service's CPU and the machine's busy share over it. */
  async function measured(fn: () => Promise<void>) {
    const cpu0 = cpuMsOf(svc.child.pid);
    const m0 = machineJiffies();
    const t0 = nowMs();
    await fn();
    const ms = nowMs() - t0;
    const cpu1 = cpuMsOf(svc.child.pid);
    const m1 = machineJiffies();
    const busyPct = (100 * (m1.busy - m0.busy)) / Math.max(1, m1.total - m0.total);
    return { ms, cpuMs: cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : null, busyPct };
  }

  async function croniumRun(s: ServiceProcess, sc: Endpoint[], jobs: number): Promise<RunResult> {
    let next = 0;
    const lat: number[] = [];
    const failures: string[] = [];
    const submitter = async () => {
      for (let i = next++; i < jobs; i = next++) {
        const t0 = nowMs();
        const res = await s.api('POST', '/v1/jobs', {
          script: { type: 'bash', content: 'echo ok' },
          targets: { serverIds: [sc[i % sc.length].serverId] },
        });
        if (res.status !== 202) {
          failures.push(`POST /v1/jobs: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
          continue;
        }
        let ex: any;
        do {
          ex = (await s.api('GET', `/v1/executions/${res.body.id}?wait=60`)).body;
        } while (!isFinal(ex?.status));
        lat.push(nowMs() - t0);
        const t = ex.targets?.[0];
        if (ex.status !== 'succeeded' || t?.exitCode !== 0)
          failures.push(
            `${res.body.id}: ${ex.status}, exit ${t?.exitCode}` +
              (t?.error ? ` ${t.error.code}: ${t.error.message}` : ''),
          );
      }
    };
    const m = await measured(async () => {
      await Promise.all(Array.from({ length: SUBMITTERS }, submitter));
    });
    if (lat.length + failures.length < jobs)
      throw new Error(`cronium: ${lat.length} jobs ended for ${jobs} submitted`);
    return {
      tool: 'cronium',
      ms: m.ms,
      jobs,
      jobsPerSec: (jobs * 1000) / m.ms,
      cpuMsPerJob: m.cpuMs === null ? null : m.cpuMs / jobs,
      machineBusyPct: m.busyPct,
      latency: lat.length ? stats(lat) : null,
      failures,
    };
  }

  async function muxRun(sc: Endpoint[], jobs: number, parallel: number): Promise<RunResult> {
    let next = 0;
    const lat: number[] = [];
    const failures: string[] = [];
    const worker = async () => {
      for (let i = next++; i < jobs; i = next++) {
        const r = await runCmd(SSH, [...muxArgs(sc[i % sc.length].sshd), 'echo ok']);
        lat.push(r.ms);
        if (r.code !== 0 || r.stdout !== 'ok\n')
          failures.push(`exit ${r.code}, stdout ${JSON.stringify(r.stdout)}: ${r.stderr.trim()}`);
      }
    };
    if (!(parallel >= 1)) throw new Error(`ssh-mux: bad parallelism ${parallel}`);
    const m = await measured(async () => {
      await Promise.all(Array.from({ length: parallel }, worker));
    });
    if (lat.length !== jobs) throw new Error(`ssh-mux: ${lat.length} runs for ${jobs} jobs`);
    return {
      tool: `ssh-mux x${parallel}`,
      ms: m.ms,
      jobs,
      jobsPerSec: (jobs * 1000) / m.ms,
      cpuMsPerJob: null,
      machineBusyPct: m.busyPct,
      latency: stats(lat),
      failures,
    };
  }

  async function psshRun(sc: Endpoint[], jobs: number): Promise<RunResult> {
    const hostsFile = path.join(benchDir, `hosts-${sc.length}-${jobs}`);
    fs.writeFileSync(
      hostsFile,
      Array.from(
        { length: jobs },
        (_, i) => `${user}@127.0.0.1:${sc[i % sc.length].sshd.port}\n`,
      ).join(''),
    );
    const args = psshArgs(hostsFile, PSSH_PARALLEL, sshOpts, keyFile);
    let r: Awaited<ReturnType<typeof runCmd>> | undefined;
    const m = await measured(async () => {
      r = await runCmd('parallel-ssh', args);
    });
    const lines = r!.stdout.split('\n');
    const okCount = lines.filter((l) => /\[SUCCESS\]/.test(l)).length;
    const oks = lines.filter((l) => l === 'ok').length;
    const failures = lines
      .filter((l) => /\[FAILURE\]|Timed out/i.test(l))
      .map((l) => l.replace(/^\[\d+\] [\d:]+ /, ''));
    if (r!.code !== 0) failures.unshift(`parallel-ssh exit ${r!.code} ${r!.stderr.trim()}`.trim());
    if (okCount !== jobs || oks !== jobs)
      failures.push(`${okCount} [SUCCESS] lines and ${oks} "ok" lines for ${jobs} runs`);
    return {
      tool: `pssh -p ${PSSH_PARALLEL}`,
      ms: m.ms,
      jobs,
      jobsPerSec: (jobs * 1000) / m.ms,
      cpuMsPerJob: null,
      machineBusyPct: m.busyPct,
      latency: null,
      failures,
    };
  }
}

runBench(main);
