/**
 * `npm run bench cli`: wall time of the `cronium` CLI running `echo ok` on one server
 * (`cronium run --server <id> -- 'echo ok'`: node start, POST /v1/jobs, the websocket
 * stream, the log reconcile, the final GET and table), against `ssh -o ControlMaster`
 * over a warm master connection, both against the same sshd and in the same run, rounds
 * interleaved. Context series: `node -e 0` (the floor of any node CLI) and
 * `cronium --help` (node plus loading the CLI's modules). See bench/README.md.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT } from '../test/support/service-process';
import { startSshd } from '../test/support/sshd';
import {
  envCount,
  machineEnv,
  onCleanup,
  opensshVersion,
  printTable,
  runBench,
  runCmd,
  startService,
  stats,
  writeResults,
} from './support';

const N = envCount('BENCH_N', 20);
const SSH = '/usr/bin/ssh';
const CLI = path.join(REPO_ROOT, 'dist/cli/main.js');

type Series = 'cronium-run' | 'ssh-mux' | 'node-e-0' | 'cronium-help';
const SERIES: Series[] = ['cronium-run', 'ssh-mux', 'node-e-0', 'cronium-help'];

runBench(async () => {
  const started = Date.now();
  const loadavgAtStart = os.loadavg();
  const benchDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-bench-cli-'));
  onCleanup('bench dir', () => fs.rmSync(benchDir, { recursive: true, force: true }));
  const sshd = await startSshd();
  onCleanup(`sshd ${sshd.port}`, () => sshd.stop());
  const svc = await startService({ env: { NODE_ENV: 'test' }, stdio: 'ignore' });
  const srv = await svc.registerServer(sshd, { baseDir: `${sshd.dir}/base` });
  const serverId: string = srv.body.id;
  const serverName: string = srv.body.name;

  const cliEnv = { ...process.env, CRONIUM_URL: svc.base, CRONIUM_TOKEN: svc.token };
  const cronium = (args: string[]) => runCmd(process.execPath, [CLI, ...args], cliEnv);
  const knownHosts = path.join(benchDir, 'known_hosts');
  fs.writeFileSync(knownHosts, `[127.0.0.1]:${sshd.port} ${sshd.hostPublicKey}\n`);
  // prettier-ignore
  const sshArgs = [
    '-F', '/dev/null',
    '-o', 'BatchMode=yes',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', `UserKnownHostsFile=${knownHosts}`,
    '-o', 'LogLevel=ERROR',
    '-o', 'ControlMaster=auto',
    '-o', `ControlPath=${path.join(benchDir, 'cm-%C')}`,
    '-o', 'ControlPersist=120',
    '-i', sshd.key.privateKeyPath!,
    '-p', String(sshd.port),
    `${sshd.username}@127.0.0.1`,
  ];

  const run: Record<Series, () => Promise<number>> = {
    'cronium-run': async () => {
      const r = await cronium(['run', '--server', serverId, '--', 'echo ok']);
      if (r.code !== 0 || !r.stdout.includes(`[${serverName}] ok\n`))
        throw new Error(`cronium run: exit ${r.code}\n${r.stdout}${r.stderr}`);
      return r.ms;
    },
    'ssh-mux': async () => {
      const r = await runCmd(SSH, [...sshArgs, 'echo ok']);
      if (r.code !== 0 || r.stdout !== 'ok\n') throw new Error(`ssh: exit ${r.code} ${r.stderr}`);
      return r.ms;
    },
    'node-e-0': async () => (await runCmd(process.execPath, ['-e', '0'])).ms,
    'cronium-help': async () => {
      const r = await cronium(['--help']);
      if (r.code !== 0) throw new Error(`cronium --help: exit ${r.code}`);
      return r.ms;
    },
  };

  // Warm-up: the first job deploys the runner and opens the pooled connection; the first
  // ssh starts the ControlMaster.
  for (const s of SERIES) await run[s]();
  onCleanup('ControlMaster', async () => void (await runCmd(SSH, ['-O', 'exit', ...sshArgs])));

  console.error(`cli: N=${N} interleaved rounds, sshd 127.0.0.1:${sshd.port}, service ${svc.base}`);
  const samples: Record<Series, number[]> = {
    'cronium-run': [],
    'ssh-mux': [],
    'node-e-0': [],
    'cronium-help': [],
  };
  for (let i = 0; i < N; i++) for (const s of SERIES) samples[s].push(await run[s]());

  const st = Object.fromEntries(SERIES.map((s) => [s, stats(samples[s])])) as Record<
    Series,
    ReturnType<typeof stats>
  >;
  const f = (n: number) => n.toFixed(1);
  printTable(
    ['series', 'n', 'p50 ms', 'p95 ms', 'min ms', 'max ms'],
    SERIES.map((s) => [s, String(st[s].n), f(st[s].p50), f(st[s].p95), f(st[s].min), f(st[s].max)]),
    1,
  );
  const ratio = st['cronium-run'].p50 / st['ssh-mux'].p50;
  console.log(
    `\ncronium run / ssh-mux p50: ${ratio.toFixed(2)}x; ` +
      `of cronium run's p50, ${f(st['cronium-help'].p50)} ms is node start + module load`,
  );
  writeResults('cli', started, {
    env: {
      ...machineEnv(loadavgAtStart),
      node: process.version,
      ssh: opensshVersion(SSH),
      n: N,
    },
    stats: st,
    ratioP50: ratio,
    samples,
  });
});
