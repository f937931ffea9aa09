/**
 * `npm run bench warm-latency`: warm end-to-end latency of one tiny bash job (`echo ok`)
 * through cronium, compared with OpenSSH against the same sshd:
 *
 *   cronium    POST /v1/jobs → GET /v1/executions/:id until a final status (pooled SSH
 *              connection and cached runner, i.e. the warm path)
 *   cronium-wait  POST /v1/jobs → one GET /v1/executions/:id?wait=60 (the long-poll)
 *   ssh2-raw   ssh2 `exec('echo ok')` on an established connection with TCP_NODELAY: the
 *              floor (open a session channel, run the command through the login shell)
 *   ssh-mux    `ssh ... 'echo ok'` over an established ControlMaster connection
 *   ssh-fresh  `ssh ... 'echo ok'` with a new connection each time (context only, N/4 runs)
 *
 * Each tool runs as root (the harness user) and as cronium-test (no pyenv in ~/.bashrc).
 * Rounds are interleaved so machine noise hits every series alike. See bench/README.md.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'ssh2';
import { ensureTestUser, SshdInstance, startSshd } from '../test/support/sshd';
import {
  envCount,
  idsOf,
  machineEnv,
  median,
  nowMs,
  onCleanup,
  opensshVersion,
  printTable,
  runBench,
  runCmd,
  startService,
  Stats,
  stats,
  writeResults,
} from './support';

const N = envCount('BENCH_N', 200);
const FRESH_EVERY = 4; // ssh-fresh runs once every FRESH_EVERY rounds
const POLL_MS = envCount('BENCH_POLL_MS', 1); // pause between GETs
const SSH = '/usr/bin/ssh';

type Tool = 'cronium' | 'cronium-wait' | 'ssh2-raw' | 'ssh-mux' | 'ssh-fresh';
const TOOLS: Tool[] = ['cronium', 'cronium-wait', 'ssh2-raw', 'ssh-mux', 'ssh-fresh'];

interface CroniumSample {
  totalMs: number;
  polls: number;
  /** finishedAt - createdAt of the execution record (service clock, ms resolution). */
  serviceMs: number | null;
  connectMs: number | null;
  deployMs: number | null;
  runMs: number | null;
}

interface UserCtx {
  user: string;
  serverId: string;
  cronium: CroniumSample[];
  croniumWait: number[];
  raw: number[];
  sshMux: number[];
  sshFresh: number[];
}

const round2 = (x: number | null) =>
  x === null || Number.isNaN(x) ? x : Math.round(x * 100) / 100;

/** Runs ssh; resolves with its stdout, exit code and the spawn→exit time in ms. */
const runSsh = (args: string[]) => runCmd(SSH, args);

async function main(): Promise<void> {
  const started = Date.now();
  const loadAtStart = os.loadavg();
  const benchDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-bench-'));
  onCleanup('bench dir', () => fs.rmSync(benchDir, { recursive: true, force: true }));

  // --- sshd and users ------------------------------------------------------------------
  const sshd: SshdInstance = await startSshd();
  onCleanup('sshd', () => sshd.stop());
  const testUser = (await ensureTestUser()).username;
  const users = [sshd.username, testUser];
  const keyFile = sshd.key.privateKeyPath!;
  const knownHosts = path.join(benchDir, 'known_hosts');
  fs.writeFileSync(knownHosts, `[127.0.0.1]:${sshd.port} ${sshd.hostPublicKey}\n`);

  // baseDir for cronium: under the sshd dir (removed by sshd.stop()); the sshd dir is 0711
  // root-owned, so the non-root user's directory is created here and handed over.
  const baseDirOf = (user: string) => path.join(sshd.dir, `cronium-${user}`);
  for (const user of users) {
    const dir = baseDirOf(user);
    fs.mkdirSync(dir, { mode: 0o700 });
    const { uid, gid } = idsOf(user);
    fs.chownSync(dir, uid, gid);
  }

  // -F /dev/null: no user or system ssh_config (Debian's enables GSSAPIAuthentication).
  // prettier-ignore
  const common = [
    '-F', '/dev/null',
    '-o', 'BatchMode=yes',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', `UserKnownHostsFile=${knownHosts}`,
    '-o', 'LogLevel=ERROR',
    '-i', keyFile,
    '-p', String(sshd.port),
  ];
  const controlPath = path.join(benchDir, 'cm-%C');
  // prettier-ignore
  const muxOpts = [
    '-o', 'ControlMaster=auto',
    '-o', `ControlPath=${controlPath}`,
    '-o', 'ControlPersist=120',
  ];
  const freshOpts = ['-o', 'ControlMaster=no', '-o', 'ControlPath=none'];
  const dest = (user: string) => `${user}@127.0.0.1`;
  const sshMux = (user: string) => runSsh([...common, ...muxOpts, dest(user), 'echo ok']);
  const sshFresh = (user: string) => runSsh([...common, ...freshOpts, dest(user), 'echo ok']);
  const checkSsh = (r: Awaited<ReturnType<typeof runSsh>>, what: string) => {
    if (r.code !== 0 || r.stdout !== 'ok\n') {
      throw new Error(
        `${what}: exit ${r.code}, stdout ${JSON.stringify(r.stdout)}, stderr ${r.stderr.trim()}`,
      );
    }
  };

  // --- the service ---------------------------------------------------------------------
  const svc = await startService();
  const { api, base } = svc;

  const ctx: UserCtx[] = [];
  for (const user of users) {
    const r = await svc.registerServer(sshd, {
      name: `bench-${user}`,
      username: user,
      baseDir: baseDirOf(user),
    });
    ctx.push({
      user,
      serverId: r.body.id,
      cronium: [],
      croniumWait: [],
      raw: [],
      sshMux: [],
      sshFresh: [],
    });
  }

  // The floor: one ssh2 connection per user, TCP_NODELAY, an exec channel per sample.
  const rawClients = new Map<string, Client>();
  for (const user of users) {
    const client = new Client();
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve());
      client.once('error', reject);
      client.connect({
        host: '127.0.0.1',
        port: sshd.port,
        username: user,
        privateKey: fs.readFileSync(keyFile),
      });
    });
    client.setNoDelay(true);
    rawClients.set(user, client);
    onCleanup(`ssh2 ${user}`, async () => void client.end());
  }
  const rawExec = (user: string) =>
    new Promise<number>((resolve, reject) => {
      const t0 = nowMs();
      let out = '';
      rawClients.get(user)!.exec('echo ok', (err, ch) => {
        if (err) return reject(err);
        ch.on('data', (d: Buffer) => (out += d.toString()));
        ch.stderr.resume();
        ch.on('close', () =>
          out === 'ok\n' ? resolve(nowMs() - t0) : reject(new Error(`ssh2 raw: ${out}`)),
        );
      });
    });

  /** A job waited for with the long-poll: one GET, answered at its end. */
  const waitedJob = async (c: UserCtx): Promise<number> => {
    const t0 = nowMs();
    const res = await api('POST', '/v1/jobs', {
      script: { type: 'bash', content: 'echo ok' },
      targets: { serverIds: [c.serverId] },
    });
    if (res.status !== 202) throw new Error(`POST /v1/jobs: ${res.status}`);
    for (;;) {
      const ex = await api('GET', `/v1/executions/${res.body.id}?wait=60`);
      if (ex.body.status === 'succeeded') return nowMs() - t0;
      if (['failed', 'partial', 'cancelled'].includes(ex.body.status))
        throw new Error(`cronium-wait job as ${c.user} ended ${ex.body.status}`);
    }
  };

  const job = async (c: UserCtx): Promise<{ sample: CroniumSample; id: string }> => {
    const t0 = nowMs();
    const res = await api('POST', '/v1/jobs', {
      script: { type: 'bash', content: 'echo ok' },
      targets: { serverIds: [c.serverId] },
    });
    if (res.status !== 202)
      throw new Error(`POST /v1/jobs: ${res.status} ${JSON.stringify(res.body)}`);
    const id: string = res.body.id;
    let polls = 0;
    const ex = await svc.waitForExecution(id, { pollMs: POLL_MS, onPoll: () => void polls++ });
    const totalMs = nowMs() - t0;
    if (ex.status !== 'succeeded') {
      throw new Error(`cronium job as ${c.user} ended ${ex.status}: ${JSON.stringify(ex.targets)}`);
    }
    const t = ex.targets[0];
    const serviceMs =
      ex.createdAt && ex.finishedAt ? Date.parse(ex.finishedAt) - Date.parse(ex.createdAt) : null;
    return {
      id,
      sample: { totalMs, polls, serviceMs, ...t.phases },
    };
  };

  // --- warm-up: first job deploys the runner and opens the pooled connection; first
  // ssh-mux run starts the ControlMaster; one fresh run checks that path works. --------
  for (const c of ctx) {
    const w = await job(c);
    const logs = await api('GET', `/v1/executions/${w.id}/logs?format=text`);
    if (typeof logs.body !== 'string' || !/(^|\n|\s)ok(\n|$)/.test(logs.body)) {
      throw new Error(
        `warm-up job as ${c.user}: no "ok" in the logs: ${JSON.stringify(logs.body)}`,
      );
    }
    checkSsh(await sshMux(c.user), `ssh-mux warm-up as ${c.user}`);
    onCleanup(`ControlMaster ${c.user}`, async () => {
      const r = await runSsh([...common, ...muxOpts, '-O', 'exit', dest(c.user)]);
      if (r.code !== 0 && !/No such file|Control socket connect/.test(r.stderr)) {
        throw new Error(`ssh -O exit: ${r.stderr.trim()}`);
      }
    });
    const check = await runSsh([...common, ...muxOpts, '-O', 'check', dest(c.user)]);
    if (check.code !== 0)
      throw new Error(`ControlMaster for ${c.user} is not running: ${check.stderr}`);
    checkSsh(await sshFresh(c.user), `ssh-fresh warm-up as ${c.user}`);
  }

  // --- measured rounds ------------------------------------------------------------------
  console.error(
    `warm-latency: N=${N} rounds, users ${users.join(', ')}, sshd 127.0.0.1:${sshd.port}, service ${base}`,
  );
  const progressEvery = Math.max(1, Math.round(N / 10));
  for (let i = 0; i < N; i++) {
    svc.assertRunning();
    const tasks: (() => Promise<void>)[] = [];
    for (const c of ctx) {
      tasks.push(async () => {
        c.cronium.push((await job(c)).sample);
      });
      tasks.push(async () => {
        c.croniumWait.push(await waitedJob(c));
      });
      tasks.push(async () => {
        c.raw.push(await rawExec(c.user));
      });
      tasks.push(async () => {
        const r = await sshMux(c.user);
        checkSsh(r, `ssh-mux as ${c.user}`);
        c.sshMux.push(r.ms);
      });
      if (i % FRESH_EVERY === 0) {
        tasks.push(async () => {
          const r = await sshFresh(c.user);
          checkSsh(r, `ssh-fresh as ${c.user}`);
          c.sshFresh.push(r.ms);
        });
      }
    }
    // Rotate the starting point each round so no series always runs first or last.
    const k = i % tasks.length;
    for (const t of [...tasks.slice(k), ...tasks.slice(0, k)]) await t();
    if ((i + 1) % progressEvery === 0) console.error(`  round ${i + 1}/${N}`);
  }

  // --- report -----------------------------------------------------------------------------
  const results: Record<string, any> = {};
  const rows: string[][] = [];
  const ratios: Record<string, { p50: number; p95: number }> = {};
  const floors: Record<string, { waitVsMux: number; waitVsRaw: number }> = {};
  for (const c of ctx) {
    const series: Record<Tool, number[]> = {
      cronium: c.cronium.map((s) => s.totalMs),
      'cronium-wait': c.croniumWait,
      'ssh2-raw': c.raw,
      'ssh-mux': c.sshMux,
      'ssh-fresh': c.sshFresh,
    };
    const st = Object.fromEntries(TOOLS.map((t) => [t, stats(series[t])])) as Record<Tool, Stats>;
    for (const t of TOOLS) {
      rows.push([
        t,
        c.user,
        String(st[t].n),
        ...[st[t].p50, st[t].p95, st[t].mean, st[t].min].map((x) => x.toFixed(1)),
      ]);
    }
    ratios[c.user] = {
      p50: st.cronium.p50 / st['ssh-mux'].p50,
      p95: st.cronium.p95 / st['ssh-mux'].p95,
    };
    floors[c.user] = {
      waitVsMux: st['cronium-wait'].p50 / st['ssh-mux'].p50,
      waitVsRaw: st['cronium-wait'].p50 / st['ssh2-raw'].p50,
    };
    const phases = {
      connectMs: median(c.cronium.map((s) => s.connectMs)),
      deployMs: median(c.cronium.map((s) => s.deployMs)),
      runMs: median(c.cronium.map((s) => s.runMs)),
      serviceMs: median(c.cronium.map((s) => s.serviceMs)),
      polls: median(c.cronium.map((s) => s.polls)),
    };
    results[c.user] = {
      stats: Object.fromEntries(
        TOOLS.map((t) => [
          t,
          Object.fromEntries(Object.entries(st[t]).map(([k, v]) => [k, round2(v)])),
        ]),
      ),
      croniumMedians: phases,
      ratio: { p50: round2(ratios[c.user].p50), p95: round2(ratios[c.user].p95) },
      longPoll: {
        vsSshMuxP50: round2(floors[c.user].waitVsMux),
        vsRawP50: round2(floors[c.user].waitVsRaw),
      },
      samples: {
        cronium: c.cronium.map((s) => ({ ...s, totalMs: round2(s.totalMs) })),
        'cronium-wait': c.croniumWait.map(round2),
        'ssh2-raw': c.raw.map(round2),
        'ssh-mux': c.sshMux.map(round2),
        'ssh-fresh': c.sshFresh.map(round2),
      },
    };
  }

  const header = ['tool', 'user', 'n', 'p50 ms', 'p95 ms', 'mean ms', 'min ms'];
  console.log(`\nwarm latency of one \`echo ok\` job (bash), N=${N} rounds, interleaved\n`);
  const widths = printTable(header, rows, 2);
  console.log('');
  for (const c of ctx) {
    const r = ratios[c.user];
    const p = results[c.user].croniumMedians;
    console.log(
      `${c.user.padEnd(widths[1])}  cronium/ssh-mux  p50 ${r.p50.toFixed(2)}x  p95 ${r.p95.toFixed(2)}x` +
        `   | cronium medians: runMs ${p.runMs}, connectMs ${p.connectMs}, deployMs ${p.deployMs},` +
        ` createdAt→finishedAt ${p.serviceMs} ms, polls ${p.polls}`,
    );
  }
  for (const c of ctx) {
    const f = floors[c.user];
    console.log(
      `${c.user.padEnd(widths[1])}  cronium-wait p50: ${f.waitVsRaw.toFixed(2)}x the ssh2 floor, ${f.waitVsMux.toFixed(2)}x ssh-mux`,
    );
  }
  console.log(
    `\ngoals: cronium p50 <= ssh-mux p50; with the long-poll <= 3x the floor, <= 0.75x ssh-mux`,
  );

  writeResults('warm-latency', started, {
    params: { N, freshEvery: FRESH_EVERY, pollMs: POLL_MS, script: 'echo ok (bash)' },
    env: { node: process.version, openssh: opensshVersion(SSH), ...machineEnv(loadAtStart) },
    units: 'ms',
    results,
  });
}

runBench(main);
