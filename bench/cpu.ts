/**
 * `npm run bench cpu`: where the machine's CPU goes for one warm `echo ok` job (bash), one
 * job at a time (POST /v1/jobs, then the long-poll), as an unprivileged user on one sshd.
 *
 * The machine's busy time (/proc/stat, all CPUs) over BENCH_N jobs, per job, split into:
 *   service      the service process (utime+stime, /proc/<pid>/stat)
 *   bench        this process: the HTTP client
 *   sshd (conn)  the long-lived sshd processes (the pooled connection's)
 *   the rest     everything that lived and died within the window: on the server, the
 *                login shell of each channel, the runner's processes and what they exec
 *                (the standby's setup for the next job included), the script; and the
 *                kernel's own work for them
 * Long-lived processes are read before and after; the rest is the remainder, so nothing of
 * it depends on process accounting. Also the jobs per second this one-at-a-time loop gets.
 * See bench/README.md.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureTestUser, startSshd } from '../test/support/sshd';
import {
  envCount,
  idsOf,
  machineEnv,
  machineJiffies,
  nowMs,
  onCleanup,
  printTable,
  procStat,
  runBench,
  startService,
  writeResults,
} from './support';

const N = envCount('BENCH_N', 300);
const WARMUP = envCount('BENCH_WARMUP', 10);
const TICK_MS = 1000 / 100; // USER_HZ

/** utime+stime (ticks) and the name of every process, by pid and start time. */
function processTimes(): Map<string, { comm: string; pid: number; ticks: number }> {
  const m = new Map<string, { comm: string; pid: number; ticks: number }>();
  for (const d of fs.readdirSync('/proc')) {
    const st = /^\d+$/.test(d) ? procStat(Number(d)) : null; // null: gone meanwhile
    if (st) m.set(`${d}:${st.start}`, { comm: st.comm, pid: Number(d), ticks: st.cpuTicks });
  }
  return m;
}

runBench(async () => {
  const started = Date.now();
  const loadavgAtStart = os.loadavg();
  const sshd = await startSshd();
  onCleanup('sshd', () => sshd.stop());
  const user = (await ensureTestUser()).username;
  const baseDir = path.join(sshd.dir, `cronium-${user}`);
  fs.mkdirSync(baseDir, { mode: 0o700 });
  const { uid, gid } = idsOf(user);
  fs.chownSync(baseDir, uid, gid);
  const svc = await startService();
  const serverId: string = (await svc.registerServer(sshd, { username: user, baseDir })).body.id;
  const servicePid = svc.child.pid!;

  const job = async () => {
    const res = await svc.api('POST', '/v1/jobs', {
      script: { type: 'bash', content: 'echo ok' },
      targets: { serverIds: [serverId] },
    });
    if (res.status !== 202) throw new Error(`POST /v1/jobs: ${res.status}`);
    const ex = await svc.api('GET', `/v1/executions/${res.body.id}?wait=60`);
    if (ex.body.status !== 'succeeded') throw new Error(`job ended ${ex.body.status}`);
  };
  for (let i = 0; i < WARMUP; i++) await job();
  await new Promise((r) => setTimeout(r, 500)); // the last standby is up

  console.log(`cpu: N=${N} jobs one at a time, user ${user}, sshd 127.0.0.1:${sshd.port}`);
  const before = processTimes();
  const m0 = machineJiffies();
  const t0 = nowMs();
  for (let i = 0; i < N; i++) await job();
  const ms = nowMs() - t0;
  await new Promise((r) => setTimeout(r, 300)); // the last standby is up again
  const m1 = machineJiffies();
  const after = processTimes();

  const perJob = (ticks: number) => (ticks * TICK_MS) / N;
  const parts = { service: 0, bench: 0, sshdConn: 0 };
  for (const [k, v] of after) {
    const b = before.get(k);
    if (!b) continue;
    const d = v.ticks - b.ticks;
    if (v.pid === servicePid) parts.service += d;
    else if (v.pid === process.pid) parts.bench += d;
    else if (v.comm === 'sshd') parts.sshdConn += d;
  }
  const busy = m1.busy - m0.busy;
  const rest = busy - parts.service - parts.bench - parts.sshdConn;
  const rows: [string, number][] = [
    ['machine (all CPUs)', busy],
    ['service', parts.service],
    ['bench (HTTP client)', parts.bench],
    ['sshd (connection)', parts.sshdConn],
    ['the rest (short-lived)', rest],
  ];
  console.log('');
  printTable(
    ['CPU per job', 'ms'],
    rows.map(([name, t]) => [name, perJob(t).toFixed(2)]),
    1,
  );
  const jobsPerSec = N / (ms / 1000);
  console.log(
    `\n${jobsPerSec.toFixed(1)} jobs/s one at a time (${(ms / N).toFixed(1)} ms a job); ` +
      `at ${perJob(busy).toFixed(1)} ms of machine CPU a job, ${os.cpus().length} CPUs ` +
      `would do at most ${((os.cpus().length * 1000) / perJob(busy)).toFixed(0)} jobs/s`,
  );
  writeResults('cpu', started, {
    n: N,
    msPerJob: ms / N,
    jobsPerSec,
    cpuMsPerJob: Object.fromEntries(rows.map(([name, t]) => [name, perJob(t)])),
    machine: machineEnv(loadavgAtStart),
  });
});
