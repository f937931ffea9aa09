/**
 * What the benches share: env parameters, statistics, teardown on success, error or signal,
 * the service under test, timed commands, the table and the results file.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  REPO_ROOT,
  ServiceProcess,
  ServiceProcessOptions,
  startServiceProcess,
} from '../test/support/service-process';
import { SshdInstance, startSshd } from '../test/support/sshd';

/** A positive integer from the environment, or `dflt` when unset or empty. */
export function envCount(name: string, dflt: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`${name} must be a positive integer, got ${raw}`);
  return n;
}

/** A comma-separated list of positive integers from the environment, or `dflt`. */
export function envList(name: string, dflt: number[]): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const list = raw.split(',').map((s) => Number(s.trim()));
  if (!list.length || list.some((n) => !Number.isInteger(n) || n < 1))
    throw new Error(`${name} must be a comma-separated list of positive integers, got ${raw}`);
  return list;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

// --- statistics ---------------------------------------------------------------------------

export interface Stats {
  n: number;
  p50: number;
  p95: number;
  mean: number;
  min: number;
  max: number;
}

/** Linear-interpolated percentile (p in 0..100) of an unsorted sample. */
export function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const idx = ((s.length - 1) * p) / 100;
  const lo = Math.floor(idx);
  const hi = Math.ceil(idx);
  return s[lo] + (s[hi] - s[lo]) * (idx - lo);
}

export function stats(values: number[]): Stats {
  return {
    n: values.length,
    p50: percentile(values, 50),
    p95: percentile(values, 95),
    mean: values.reduce((a, b) => a + b, 0) / (values.length || 1),
    min: Math.min(...values),
    max: Math.max(...values),
  };
}

/** The numbers among `values` (no null, undefined or NaN). */
export const nums = (values: (number | null | undefined)[]) =>
  values.filter((x): x is number => typeof x === 'number' && !Number.isNaN(x));

/** Median of the numbers among `values`, null if there are none. */
/** A reproducible sequence in [0, 1) from `seed` (mulberry32). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A copy of `items` in an order drawn from `rand` (Fisher-Yates). */
export function shuffled<T>(items: T[], rand: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

export const median = (values: (number | null | undefined)[]) => {
  const v = nums(values);
  return v.length ? percentile(v, 50) : null;
};

// --- teardown -----------------------------------------------------------------------------

interface Cleanup {
  name: string;
  fn: () => Promise<void> | void;
}

/** Cleanup steps, run last-in first-out exactly once, on success, error or signal. */
const cleanups: Cleanup[] = [];
let cleaning: Promise<void> | undefined;
let interrupted = false;

/** Adds a teardown step; returns a handle for dropCleanup. */
export function onCleanup(name: string, fn: () => Promise<void> | void): Cleanup {
  const entry = { name, fn };
  cleanups.push(entry);
  return entry;
}

/** Removes a teardown step that is no longer needed. */
export function dropCleanup(entry: Cleanup): void {
  const i = cleanups.indexOf(entry);
  if (i >= 0) cleanups.splice(i, 1);
}

function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    while (cleanups.length) {
      const { name, fn } = cleanups.pop()!;
      try {
        await fn();
      } catch (e) {
        console.error(`cleanup ${name} failed: ${(e as Error).message}`);
      }
    }
  })();
  return cleaning;
}

/**
 * Runs a bench's main, then every cleanup step. On SIGINT or SIGTERM the cleanups run at
 * once and the process exits 130; the errors of requests cut short by that are not shown.
 */
export function runBench(main: () => Promise<void>): void {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      interrupted = true;
      console.error(`\n${sig}: tearing down`);
      void cleanupAll().finally(() => process.exit(130));
    });
  }
  main()
    .catch((e) => {
      if (interrupted) return;
      console.error(e);
      process.exitCode = 1;
    })
    .finally(() => cleanupAll());
}

// --- processes ----------------------------------------------------------------------------

/**
 * K sshd processes for a fleet of endpoints, each listening on 127.0.0.1 … 127.0.0.<addrs>
 * (sshd takes at most 16 listen sockets), with room for many connections and sessions;
 * stopped on teardown.
 */
export async function startFleetSshds(k: number, addrs: number): Promise<SshdInstance[]> {
  const extraListen = Array.from({ length: addrs - 1 }, (_, a) => `ListenAddress 127.0.0.${a + 2}`);
  const sshds: SshdInstance[] = [];
  for (let i = 0; i < k; i++) {
    const s = await startSshd({
      maxStartups: '200:30:400',
      maxSessions: 100,
      extraConfig: extraListen.join('\n'),
    });
    onCleanup(`sshd ${s.port}`, () => s.stop());
    sshds.push(s);
  }
  return sshds;
}

/** Starts the service (fresh data dir unless given), stopped on teardown, and waits until ready. */
export async function startService(opts: ServiceProcessOptions = {}): Promise<ServiceProcess> {
  const svc = await startServiceProcess(opts);
  onCleanup(`service ${svc.port}`, () => svc.stop());
  await svc.waitReady();
  return svc;
}

export interface CmdResult {
  /** spawn → exit, in ms. */
  ms: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command; resolves with its output, exit code and the spawn→exit time in ms.
 * Killed after timeoutMs, or on teardown if it is still running then.
 */
export function runCmd(
  file: string,
  args: string[],
  env?: NodeJS.ProcessEnv,
  timeoutMs = 180_000,
): Promise<CmdResult> {
  return new Promise((resolve, reject) => {
    const t0 = nowMs();
    let t1 = 0;
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    const entry = onCleanup(`${path.basename(file)} run`, () => void child.kill('SIGKILL'));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    let stdout = '';
    let stderr = '';
    let code: number | null = null;
    let exited = false;
    let closed = false;
    const done = () => {
      if (!(exited && closed)) return;
      clearTimeout(timer);
      dropCleanup(entry);
      resolve({ ms: t1 - t0, code, stdout, stderr });
    };
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (c) => {
      t1 = nowMs();
      code = c;
      exited = true;
      done();
    });
    child.on('close', () => {
      closed = true;
      done();
    });
  });
}

/** `<bin> -V` of an OpenSSH binary (ssh or sshd), trimmed. */
export function opensshVersion(bin: string): string {
  const v = spawnSync(bin, ['-V'], { encoding: 'utf8' });
  return `${v.stderr ?? ''}${v.stdout ?? ''}`.trim();
}

/** uid and gid of a local user. */
export function idsOf(user: string): { uid: number; gid: number } {
  const id = (flag: string) =>
    Number(execFileSync('/usr/bin/id', [flag, user], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

/** utime + stime of a process in ms (clock ticks assumed 100/s, as on Linux x86/arm). */
export function cpuMsOf(pid: number | undefined): number | null {
  const st = pid ? procStat(pid) : null;
  return st ? st.cpuTicks * 10 : null;
}

/**
 * A process's name, utime+stime (ticks of 10 ms) and start time (ticks since boot) from
 * /proc/<pid>/stat; null once it is gone.
 */
export function procStat(pid: number): { comm: string; cpuTicks: number; start: string } | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return {
      comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')),
      cpuTicks: Number(rest[11]) + Number(rest[12]), // fields 14, 15
      start: rest[19], // field 22
    };
  } catch {
    return null;
  }
}

/** Busy and total jiffies of the whole machine (all cores), from /proc/stat. */
export function machineJiffies(): { busy: number; total: number } {
  const cpu = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1);
  const v = cpu.map(Number);
  const idle = v[3] + (v[4] || 0); // idle + iowait
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

function which(bin: string): boolean {
  return spawnSync('/bin/sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
}

/** Installs the apt packages of the [binary, package] pairs whose binary is missing. */
export function ensureTools(tools: [bin: string, pkg: string][]): void {
  const missing = tools.filter(([bin]) => !which(bin));
  if (!missing.length) return;
  const pkgs = missing.map(([, pkg]) => pkg);
  if (process.getuid?.() !== 0) throw new Error(`missing ${pkgs.join(', ')}: apt-get install them`);
  console.error(`installing ${pkgs.join(' ')} (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], {
    stdio: 'inherit',
    env,
  });
}

/**
 * Idempotently creates a local user whose home directory does not exist (`useradd -M -d
 * /nonexistent/<name>`, /bin/bash, no password but not locked, so key auth works): sshd
 * prints `Could not chdir to home directory …` on stderr at every login. Needs root.
 */
export function ensureNoHomeUser(name = 'cronium-nohome'): { username: string; home: string } {
  const home = `/nonexistent/${name}`;
  if (spawnSync('/usr/bin/id', ['-u', name], { stdio: 'ignore' }).status !== 0) {
    const r = spawnSync('/usr/sbin/useradd', ['-M', '-d', home, '-s', '/bin/bash', name], {
      encoding: 'utf8',
    });
    if (r.status !== 0 && spawnSync('/usr/bin/id', ['-u', name]).status !== 0)
      throw new Error(`useradd ${name} failed (${r.status}): ${r.stderr?.trim()}`);
  }
  execFileSync('/usr/sbin/usermod', ['-p', '*', name], { stdio: 'pipe' }); // unlocked, no password
  const pwHome = execFileSync('/usr/bin/getent', ['passwd', name], { encoding: 'utf8' })
    .trim()
    .split(':')[5];
  if (fs.existsSync(pwHome))
    throw new Error(`${name}'s home ${pwHome} exists; the bench needs a user without one`);
  return { username: name, home: pwHome };
}

// --- report -------------------------------------------------------------------------------

/**
 * Prints a table: the header, a line of dashes, the rows; the first `leftColumns` columns
 * left-aligned, the others right-aligned. Returns the column widths.
 */
export function printTable(header: string[], rows: string[][], leftColumns: number): number[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) =>
    r
      .map((cell, i) => (i < leftColumns ? cell.padEnd(widths[i]) : cell.padStart(widths[i])))
      .join('  ');
  console.log(fmt(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(fmt(r));
  return widths;
}

/** The machine part of a results file's `env`. */
export function machineEnv(loadavgAtStart: number[]) {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    kernel: os.release(),
    loadavgAtStart,
    loadavgAtEnd: os.loadavg(),
  };
}

/**
 * Writes bench/results/<bench>-<timestamp>.json: bench, timestamp and durationSeconds
 * (since `started`, a Date.now()), then `fields`; prints where it went.
 */
export function writeResults(bench: string, started: number, fields: Record<string, unknown>) {
  const outDir = path.join(REPO_ROOT, 'bench/results');
  fs.mkdirSync(outDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const outFile = path.join(outDir, `${bench}-${stamp}.json`);
  const report = {
    bench,
    timestamp: new Date().toISOString(),
    durationSeconds: Math.round((Date.now() - started) / 1000),
    ...fields,
  };
  fs.writeFileSync(outFile, JSON.stringify(report, null, 2) + '\n');
  console.log(`results: ${path.relative(REPO_ROOT, outFile)} (${report.durationSeconds} s)`);
}

/** parallel-ssh's arguments for running `echo ok` on every host of `hostsFile`, inline output. */
export function psshArgs(
  hostsFile: string,
  parallel: number,
  sshOpts: string[],
  keyFile: string,
): string[] {
  // prettier-ignore
  return [
    '-h', hostsFile,
    '-p', String(parallel),
    '-t', '60',
    ...sshOpts.flatMap((o) => ['-O', o]),
    '-x', `-i ${keyFile}`,
    '-i',
    'echo ok',
  ];
}
