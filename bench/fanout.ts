/**
 * `npm run bench fanout`: one tiny bash script (`echo ok`) fanned out to N servers at once,
 * through cronium and through the two usual agentless tools, on the same hosts, in the same
 * run, with the same parallelism (cronium `concurrency` = pssh `-p` = ansible `-f` = N):
 *
 *   cronium   POST /v1/jobs {targets: {tags: [fanout]}, concurrency: N} → GET
 *             /v1/executions/:id (every BENCH_POLL_MS) until a final status
 *   pssh      parallel-ssh -h hosts -p N -t 60 -i … 'echo ok'
 *   ansible   ansible fanout -i inventory -m raw -a 'echo ok' -f N
 *
 * COLD: first run of each tool per N (fresh service process with an empty data dir, so no
 * pooled connection and no runner on any server; no ansible ControlPersist master).
 * WARM: runs 2..R+1 (median of R), each tool keeping whatever reuse it has by default.
 *
 * "N servers" are N distinct (address, port) endpoints served by K sshd processes: sshd k
 * listens on 127.0.0.1 … 127.0.0.A (A = ceil(maxN / K)); endpoint i is
 * 127.0.0.(1 + floor(i / K)) on sshd (i mod K). See bench/README.md.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ServiceProcess } from '../test/support/service-process';
import { ensureTestUser, SshdInstance } from '../test/support/sshd';
import {
  cpuMsOf,
  ensureTools,
  envCount,
  envList,
  idsOf,
  machineEnv,
  median,
  nowMs,
  nums,
  onCleanup,
  opensshVersion,
  percentile,
  printTable,
  psshArgs,
  runBench,
  runCmd,
  sleep,
  startFleetSshds,
  startService,
  writeResults,
} from './support';

const SIZES = envList('BENCH_SIZES', [25, 100]);
const REPEAT = envCount('BENCH_REPEAT', 3); // warm runs per tool and N
const K = envCount('BENCH_SSHD', 10); // sshd processes
const POLL_MS = envCount('BENCH_POLL_MS', 5); // pause between GETs
const USER = process.env.BENCH_USER || 'cronium-test';
// Unset: the service default (auto: a reverse tunnel per target for the runtime helpers).
const HELPER_MODE = process.env.BENCH_HELPER_MODE || undefined;
if (HELPER_MODE && !['auto', 'api', 'bundled'].includes(HELPER_MODE))
  throw new Error(`BENCH_HELPER_MODE must be auto, api or bundled, got ${HELPER_MODE}`);
const TAG = 'fanout';

type Tool = 'cronium' | 'pssh' | 'ansible';
const TOOLS: Tool[] = ['cronium', 'pssh', 'ansible'];

interface Endpoint {
  name: string;
  host: string;
  port: number;
  sshd: SshdInstance;
  baseDir: string;
}

interface RunResult {
  ms: number;
  ok: boolean;
  okCount: number;
  /** What went wrong, verbatim-ish (error codes, tool output lines). */
  errors: string[];
  cronium?: CroniumDetail;
  /** ansible: ControlPersist masters alive (control sockets) when the run started. */
  mastersBefore?: number;
  /** 1-minute load average when the run started. */
  load1: number;
}

interface CroniumDetail {
  executionId: string;
  status: string;
  summary: Record<string, number>;
  polls: number;
  /** Service CPU time (user+system) spent during the run, from /proc/<pid>/stat. */
  serviceCpuMs: number | null;
  /** createdAt → startedAt / finishedAt of the execution (service clock). */
  createdToStartedMs: number | null;
  createdToFinishedMs: number | null;
  /** first target start → last target start (how spread out the targets' starts are). */
  targetStartSpreadMs: number | null;
  phases: Record<string, PhaseStats>;
  durationMs: PhaseStats;
  errorCodes: Record<string, number>;
}

interface PhaseStats {
  p50: number | null;
  max: number | null;
}

const phaseStats = (values: (number | null | undefined)[]): PhaseStats => {
  const v = nums(values);
  return { p50: v.length ? percentile(v, 50) : null, max: v.length ? Math.max(...v) : null };
};
const ratio = (a: number | null, b: number | null) =>
  a === null || b === null || !b ? null : Math.round((a / b) * 100) / 100;
const round1 = (x: number | null) =>
  x === null || Number.isNaN(x) ? null : Math.round(x * 10) / 10;

async function main(): Promise<void> {
  const started = Date.now();
  const loadAtStart = os.loadavg();
  ensureTools([
    ['parallel-ssh', 'pssh'],
    ['ansible', 'ansible'],
  ]);
  const maxN = Math.max(...SIZES);
  const addrs = Math.ceil(maxN / K); // loopback addresses per sshd
  if (addrs > 250) throw new Error(`BENCH_SIZES / BENCH_SSHD needs ${addrs} addresses (> 250)`);

  const benchDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-bench-fanout-'));
  onCleanup('bench dir', () => fs.rmSync(benchDir, { recursive: true, force: true }));

  // --- sshd processes and the user -------------------------------------------------------
  const user = USER === 'root' ? 'root' : (await ensureTestUser()).username;
  const { uid, gid } = idsOf(user);
  const sshds = await startFleetSshds(K, addrs);
  // Every sshd has its own client key; put the first one into all authorized_keys so that
  // one key file serves every tool and endpoint (the files are shared by all users).
  const keyFile = path.join(benchDir, 'client_key');
  fs.copyFileSync(sshds[0].key.privateKeyPath!, keyFile);
  fs.chmodSync(keyFile, 0o600);
  const privateKey = sshds[0].key.privateKey;
  for (const s of sshds.slice(1)) {
    fs.appendFileSync(path.join(s.dir, 'authorized_keys'), sshds[0].key.publicKey + '\n');
  }

  const endpointsFor = (n: number): Endpoint[] =>
    Array.from({ length: n }, (_, i) => {
      const sshd = sshds[i % K];
      return {
        name: `n${n}-e${String(i).padStart(3, '0')}`,
        host: `127.0.0.${1 + Math.floor(i / K)}`,
        port: sshd.port,
        sshd,
        baseDir: path.join(sshd.dir, `cronium-n${n}-e${i}`),
      };
    });

  // One known_hosts file with every endpoint, for pssh and ansible (cronium gets hostKey).
  const knownHosts = path.join(benchDir, 'known_hosts');
  fs.writeFileSync(
    knownHosts,
    endpointsFor(maxN)
      .map((e) => `[${e.host}]:${e.port} ${e.sshd.hostPublicKey}\n`)
      .join(''),
  );
  // The setup works (last endpoint: highest address, key from another sshd) before
  // anything is measured.
  {
    const e = endpointsFor(maxN)[maxN - 1];
    const r = await runCmd('/usr/bin/ssh', [
      ...['-F', '/dev/null', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes'],
      ...['-o', `UserKnownHostsFile=${knownHosts}`, '-i', keyFile],
      ...['-p', String(e.port), `${user}@${e.host}`, 'echo ok'],
    ]);
    if (r.code !== 0 || r.stdout !== 'ok\n')
      throw new Error(
        `ssh sanity check of ${e.host}:${e.port} failed: exit ${r.code}: ${r.stderr.trim()}`,
      );
  }

  // Options both OpenSSH-based tools get. GSSAPIAuthentication=no: Debian's ssh_config
  // turns it on, which costs every fresh connection a few ms (cronium's ssh2 never tries it).
  const sshOpts = [
    'BatchMode=yes',
    'StrictHostKeyChecking=yes',
    `UserKnownHostsFile=${knownHosts}`,
    'GSSAPIAuthentication=no',
    'LogLevel=ERROR',
  ];

  const versions = {
    openssh: opensshVersion('/usr/bin/ssh'),
    pssh: spawnSync('parallel-ssh', ['--version'], { encoding: 'utf8' }).stdout?.trim(),
    ansible: spawnSync('ansible', ['--version'], { encoding: 'utf8' }).stdout?.split('\n')[0],
  };

  console.error(
    `fanout: sizes ${SIZES.join(',')}, ${REPEAT} warm runs, ${K} sshd x ${addrs} addresses, ` +
      `user ${user}, poll ${POLL_MS} ms`,
  );

  const perSize: Record<string, any> = {};
  for (const n of SIZES) {
    perSize[n] = await runSize(n, endpointsFor(n), { user, uid, gid, keyFile, privateKey });
  }

  // --- report -----------------------------------------------------------------------------
  const fmtMs = (x: number | null) => (x === null ? '-' : x.toFixed(0));
  const fmtRatio = (a: number | null, b: number | null) =>
    a === null || b === null ? '-' : (a / b).toFixed(2);
  console.log(
    `\nfan-out of one \`echo ok\` (bash) to N servers, parallelism N, ` +
      `${K} sshd, user ${user}${HELPER_MODE ? `, helperMode ${HELPER_MODE}` : ''}; ` +
      `cold = 1st run, warm = median of ${REPEAT}; load avg ${loadAtStart[0].toFixed(1)} → ` +
      `${os.loadavg()[0].toFixed(1)}\n`,
  );
  for (const n of SIZES) {
    const r = perSize[n];
    const header = [
      'N=' + n,
      'cold ms',
      'warm p50 ms',
      'warm min',
      'warm max',
      'hosts ok: cold | warm',
    ];
    const rows = TOOLS.map((t) => {
      const s = r.summary[t];
      return [
        t,
        fmtMs(s.coldMs),
        fmtMs(s.warmP50),
        fmtMs(s.warmMin),
        fmtMs(s.warmMax),
        `${s.coldOk} | ${s.warmOk}${s.allOk ? '' : '  FAILED'}`,
      ];
    });
    printTable(header, rows, 1);
    const c = r.summary.cronium;
    const p = r.summary.pssh;
    const a = r.summary.ansible;
    console.log(
      `cronium/pssh     cold ${fmtRatio(c.coldMs, p.coldMs)}x (goal <= 1.00)` +
        `   warm ${fmtRatio(c.warmP50, p.warmP50)}x (goal <= 0.25, then <= 0.15)`,
    );
    console.log(
      `cronium/ansible  cold ${fmtRatio(c.coldMs, a.coldMs)}x` +
        `               warm ${fmtRatio(c.warmP50, a.warmP50)}x`,
    );
    const met = (x: number | null, goal: number) =>
      x === null ? '-' : x <= goal ? 'met' : 'NOT met';
    // unrounded, so 0.154 does not pass as 0.15
    const raw = (x: number | null, y: number | null) => (x === null || !y ? null : x / y);
    const cold = raw(c.coldMs, p.coldMs);
    const warm = raw(c.warmP50, p.warmP50);
    console.log(
      `goals N=${n}: cold <= 1.00x pssh: ${met(cold, 1)};  warm <= 0.25x: ${met(warm, 0.25)};` +
        `  warm <= 0.15x: ${met(warm, 0.15)}`,
    );
    const ph = (d: CroniumDetail | undefined) =>
      d
        ? ['connectMs', 'deployMs', 'tunnelMs', 'runMs']
            .map((k) => `${k} ${fmtMs(d.phases[k].p50)}/${fmtMs(d.phases[k].max)}`)
            .join(', ') +
          `, target durationMs ${fmtMs(d.durationMs.p50)}/${fmtMs(d.durationMs.max)}` +
          `; created→started ${fmtMs(d.createdToStartedMs)}, created→finished ` +
          `${fmtMs(d.createdToFinishedMs)}, target start spread ${fmtMs(d.targetStartSpreadMs)}` +
          `, service CPU ${fmtMs(d.serviceCpuMs)} ms, polls ${d.polls}`
        : '-';
    console.log(`cronium cold (p50/max over targets): ${ph(r.cronium.cold)}`);
    console.log(`cronium warm (median run):           ${ph(r.cronium.warmMedian)}`);
    for (const t of TOOLS) {
      const errs: string[] = r.errors[t];
      if (errs.length) {
        console.log(`${t} errors:`);
        for (const e of errs.slice(0, 12)) console.log(`  ${e}`);
        if (errs.length > 12) console.log(`  … ${errs.length - 12} more (see the JSON)`);
      }
    }
    console.log('');
  }
  console.log(
    'warm reuse: cronium = pooled SSH connections + cached runner (same service process); ' +
      'pssh = none (new ssh per host per run); ansible = its default ControlMaster=auto, ' +
      'ControlPersist=60s.',
  );

  writeResults('fanout', started, {
    params: {
      sizes: SIZES,
      repeat: REPEAT,
      sshd: K,
      addressesPerSshd: addrs,
      pollMs: POLL_MS,
      helperMode: HELPER_MODE ?? 'service default',
      user,
      script: 'echo ok (bash)',
      sshOptions: sshOpts,
    },
    env: {
      node: process.version,
      ...versions,
      ...machineEnv(loadAtStart),
    },
    units: 'ms',
    results: perSize,
  });

  // ---------------------------------------------------------------------------------------
  async function runSize(
    n: number,
    eps: Endpoint[],
    who: { user: string; uid: number; gid: number; keyFile: string; privateKey: string },
  ): Promise<Record<string, any>> {
    const sizeDir = path.join(benchDir, `n${n}`);
    fs.mkdirSync(sizeDir);
    // Fresh, empty baseDir per endpoint (the runner gets deployed N times).
    for (const e of eps) {
      fs.mkdirSync(e.baseDir, { mode: 0o700 });
      fs.chownSync(e.baseDir, who.uid, who.gid);
    }

    // pssh hosts file: N distinct user@host:port lines.
    const hostsFile = path.join(sizeDir, 'hosts');
    fs.writeFileSync(hostsFile, eps.map((e) => `${who.user}@${e.host}:${e.port}\n`).join(''));
    // ansible inventory: N distinct hosts.
    const inventory = path.join(sizeDir, 'inventory.ini');
    fs.writeFileSync(
      inventory,
      `[${TAG}]\n` +
        eps.map((e) => `${e.name} ansible_host=${e.host} ansible_port=${e.port}\n`).join('') +
        `\n[${TAG}:vars]\nansible_user=${who.user}\nansible_ssh_private_key_file=${who.keyFile}\n` +
        `ansible_ssh_common_args='${sshOpts.map((o) => `-o ${o}`).join(' ')}'\n`,
    );
    // Fresh ControlPersist directory per N: the cold ansible run has no master.
    const ansibleCfg = path.join(sizeDir, 'ansible.cfg');
    fs.writeFileSync(ansibleCfg, '[defaults]\n');
    const cpDir = path.join(sizeDir, 'ansible-cp');
    fs.mkdirSync(cpDir, { mode: 0o700 });
    const ansibleEnv: NodeJS.ProcessEnv = {
      ...process.env,
      ANSIBLE_CONFIG: ansibleCfg, // empty: no ansible.cfg from the cwd or home
      ANSIBLE_HOME: path.join(sizeDir, 'ansible-home'),
      ANSIBLE_LOCAL_TEMP: path.join(sizeDir, 'ansible-tmp'),
      ANSIBLE_SSH_CONTROL_PATH_DIR: cpDir,
      // ANSIBLE_SSH_ARGS left at its default: -C -o ControlMaster=auto -o ControlPersist=60s
      ANSIBLE_HOST_KEY_CHECKING: 'True', // known_hosts via ansible_ssh_common_args
      ANSIBLE_NOCOLOR: '1',
      ANSIBLE_LOCALHOST_WARNING: 'False',
      ANSIBLE_DEPRECATION_WARNINGS: 'False',
      ANSIBLE_RETRY_FILES_ENABLED: 'False',
      ANSIBLE_TIMEOUT: '60',
    };
    delete ansibleEnv.ANSIBLE_SSH_ARGS;
    onCleanup(`ansible ControlPersist masters n=${n}`, () => stopMasters(cpDir));

    // --- the service: fresh process, fresh data dir --------------------------------------
    const dataDir = path.join(sizeDir, 'service-data');
    fs.mkdirSync(dataDir);
    const svc = await startService({ dataDir });
    for (const e of eps) {
      await svc.registerServer(e.sshd, {
        name: e.name,
        host: e.host,
        username: who.user,
        privateKey: who.privateKey,
        baseDir: e.baseDir,
        tags: [TAG],
      });
    }

    const runs: Record<Tool, RunResult[]> = { cronium: [], pssh: [], ansible: [] };
    const errors: Record<Tool, string[]> = { cronium: [], pssh: [], ansible: [] };
    const runTool: Record<Tool, () => Promise<RunResult>> = {
      cronium: () => croniumRun(svc, n),
      pssh: () => psshRun(n, hostsFile, who.keyFile),
      ansible: () => ansibleRun(n, inventory, ansibleEnv),
    };

    for (let round = 0; round <= REPEAT; round++) {
      const order = TOOLS.map((_, i) => TOOLS[(i + round) % TOOLS.length]);
      for (const t of order) {
        svc.assertRunning();
        const r = await runTool[t]();
        runs[t].push(r);
        for (const e of r.errors) errors[t].push(`${round === 0 ? 'cold' : `warm#${round}`}: ${e}`);
        console.error(
          `  N=${n} ${round === 0 ? 'cold' : `warm ${round}/${REPEAT}`} ${t.padEnd(7)} ` +
            `${r.ms.toFixed(0).padStart(6)} ms  ${r.okCount}/${n} ok  load ${r.load1.toFixed(1)}` +
            (r.mastersBefore !== undefined ? `  masters before ${r.mastersBefore}` : ''),
        );
      }
    }
    await svc.stop();
    await stopMasters(cpDir);

    const summary = Object.fromEntries(
      TOOLS.map((t) => {
        const warm = runs[t].slice(1);
        const warmMs = warm.map((r) => r.ms);
        return [
          t,
          {
            coldMs: round1(runs[t][0].ms),
            warmP50: round1(median(warmMs)),
            warmMin: round1(Math.min(...warmMs)),
            warmMax: round1(Math.max(...warmMs)),
            coldOk: runs[t][0].okCount,
            warmOk: warm.map((r) => r.okCount).join(' '),
            allOk: runs[t].every((r) => r.ok),
          },
        ];
      }),
    );
    const warmCronium = runs.cronium.slice(1);
    const medianRun = [...warmCronium].sort((a, b) => a.ms - b.ms)[
      Math.floor((warmCronium.length - 1) / 2)
    ];
    // sshd log lines that explain refused connections or sessions, if any.
    const sshdComplaints = sshds
      .flatMap((s) =>
        s
          .logs()
          .split('\n')
          .filter((l) =>
            /drop|MaxStartups|beginning MaxStartups|no more sessions|refused|error:/i.test(l),
          ),
      )
      .slice(0, 50);
    return {
      n,
      summary,
      ratios: {
        croniumPsshCold: ratio(summary.cronium.coldMs, summary.pssh.coldMs),
        croniumPsshWarm: ratio(summary.cronium.warmP50, summary.pssh.warmP50),
        croniumAnsibleCold: ratio(summary.cronium.coldMs, summary.ansible.coldMs),
        croniumAnsibleWarm: ratio(summary.cronium.warmP50, summary.ansible.warmP50),
      },
      cronium: { cold: runs.cronium[0].cronium, warmMedian: medianRun?.cronium },
      errors,
      sshdComplaints,
      runs: Object.fromEntries(
        TOOLS.map((t) => [t, runs[t].map((r) => ({ ...r, ms: round1(r.ms) }))]),
      ),
    };
  }

  async function croniumRun(svc: ServiceProcess, n: number): Promise<RunResult> {
    const load1 = os.loadavg()[0];
    const cpu0 = cpuMsOf(svc.child.pid);
    const t0 = nowMs();
    const res = await svc.api('POST', '/v1/jobs', {
      script: { type: 'bash', content: 'echo ok' },
      targets: { tags: [TAG] },
      concurrency: n,
      ...(HELPER_MODE ? { helperMode: HELPER_MODE } : {}),
    });
    if (res.status !== 202)
      throw new Error(`POST /v1/jobs: ${res.status} ${JSON.stringify(res.body)}`);
    const id: string = res.body.id;
    let polls = 0;
    const ex = await svc.waitForExecution(id, { pollMs: POLL_MS, onPoll: () => void polls++ });
    const ms = nowMs() - t0;
    const cpu1 = cpuMsOf(svc.child.pid);
    const targets: any[] = ex.targets ?? [];
    const errors: string[] = [];
    const errorCodes: Record<string, number> = {};
    for (const t of targets) {
      if (t.status === 'succeeded' && t.exitCode === 0) continue;
      const code = t.error?.code ?? `status ${t.status}, exit ${t.exitCode}`;
      errorCodes[code] = (errorCodes[code] ?? 0) + 1;
      errors.push(
        `${t.serverName}: ${t.status} exit ${t.exitCode} ${t.error ? `${t.error.code}: ${t.error.message}` : ''}`.trim(),
      );
    }
    const okCount = targets.filter((t) => t.status === 'succeeded' && t.exitCode === 0).length;
    if (ex.summary?.succeeded !== n || ex.status !== 'succeeded')
      errors.unshift(`execution ${ex.status}, summary ${JSON.stringify(ex.summary)}`);
    const at = (s: string | null) => (s ? Date.parse(s) : null);
    const created = at(ex.createdAt);
    const starts = nums(targets.map((t) => at(t.startedAt)));
    const phaseKeys = ['connectMs', 'deployMs', 'tunnelMs', 'runMs'];
    return {
      ms,
      okCount,
      ok: okCount === n && ex.status === 'succeeded',
      errors,
      load1,
      cronium: {
        executionId: id,
        status: ex.status,
        summary: ex.summary,
        polls,
        serviceCpuMs: cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : null,
        createdToStartedMs: created !== null && ex.startedAt ? at(ex.startedAt)! - created : null,
        createdToFinishedMs:
          created !== null && ex.finishedAt ? at(ex.finishedAt)! - created : null,
        targetStartSpreadMs: starts.length ? Math.max(...starts) - Math.min(...starts) : null,
        phases: Object.fromEntries(
          phaseKeys.map((k) => [k, phaseStats(targets.map((t) => t.phases?.[k]))]),
        ),
        durationMs: phaseStats(targets.map((t) => t.durationMs)),
        errorCodes,
      },
    };
  }

  async function psshRun(n: number, hostsFile: string, key: string): Promise<RunResult> {
    const args = psshArgs(hostsFile, n, sshOpts, key);
    const load1 = os.loadavg()[0];
    const r = await runCmd('parallel-ssh', args);
    const lines = r.stdout.split('\n');
    const okCount = lines.filter((l) => /\[SUCCESS\]/.test(l)).length;
    const oks = lines.filter((l) => l === 'ok').length;
    const errors = lines
      .filter((l) => /\[FAILURE\]|Stderr:|Timed out|error/i.test(l))
      .map((l) => l.replace(/^\[\d+\] [\d:]+ /, ''));
    if (r.code !== 0) errors.unshift(`parallel-ssh exit ${r.code} ${r.stderr.trim()}`.trim());
    if (oks !== okCount) errors.push(`${okCount} [SUCCESS] lines but ${oks} "ok" lines`);
    return { ms: r.ms, okCount, ok: okCount === n && r.code === 0 && oks === n, errors, load1 };
  }

  async function ansibleRun(
    n: number,
    inventory: string,
    env: NodeJS.ProcessEnv,
  ): Promise<RunResult> {
    // prettier-ignore
    const args = [TAG, '-i', inventory, '-m', 'raw', '-a', 'echo ok', '-f', String(n)];
    const mastersBefore = fs.readdirSync(env.ANSIBLE_SSH_CONTROL_PATH_DIR!).length;
    const load1 = os.loadavg()[0];
    const r = await runCmd('ansible', args, env);
    const lines = r.stdout.split('\n');
    const okCount = lines.filter((l) => /^\S+ \| (CHANGED|SUCCESS) \| rc=0 >>$/.test(l)).length;
    const errors = lines.filter((l) => /\| (FAILED|UNREACHABLE)/.test(l));
    if (r.code !== 0) {
      errors.unshift(`ansible exit ${r.code}`);
      errors.push(
        ...r.stdout
          .split('\n')
          .filter((l) => /"msg"/.test(l))
          .map((l) => l.trim())
          .slice(0, 20),
      );
      if (r.stderr.trim()) errors.push(...r.stderr.trim().split('\n').slice(0, 10));
    }
    return { ms: r.ms, okCount, ok: okCount === n && r.code === 0, errors, mastersBefore, load1 };
  }

  /** Asks every ControlPersist master in dir to exit (they would otherwise outlive us). */
  async function stopMasters(dir: string): Promise<void> {
    let socks: string[] = [];
    try {
      socks = fs.readdirSync(dir).map((f) => path.join(dir, f));
    } catch {
      return;
    }
    await Promise.all(
      socks.map((s) =>
        runCmd('/usr/bin/ssh', ['-F', '/dev/null', '-o', `ControlPath=${s}`, '-O', 'exit', 'x']),
      ),
    );
    for (let i = 0; i < 50; i++) {
      if (!fs.readdirSync(dir).length) return;
      await sleep(20);
    }
  }
}

runBench(main);
