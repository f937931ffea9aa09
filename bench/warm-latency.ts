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
 * Each tool runs as two users: cronium-test (a plain login shell) and cronium-nohome (no home
 * directory: sshd prints `Could not chdir to home directory` on stderr at every login);
 * BENCH_ROOT=1 adds root (the harness user, whose ~/.bashrc may be slow). Rounds are
 * interleaved so machine noise hits every series alike.
 *
 * Then session channels per warm cronium job, counted from the log of a second sshd
 * (LogLevel DEBUG1, `server_input_channel_open: ctype session`), per user and helper mode.
 * See bench/README.md.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'ssh2';
import { ensureTestUser, SshdInstance, startSshd } from '../test/support/sshd';
import {
  ensureNoHomeUser,
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
  seededRandom,
  shuffled,
  sleep,
  startService,
  Stats,
  stats,
  writeResults,
} from './support';

const N = envCount('BENCH_N', 200);
const FRESH_EVERY = 4; // ssh-fresh runs once every FRESH_EVERY rounds
const POLL_MS = envCount('BENCH_POLL_MS', 1); // pause between GETs
const SEED = envCount('BENCH_SEED', 1); // of the order of the tools in each round
const SSH = '/usr/bin/ssh';
const WITH_ROOT = process.env.BENCH_ROOT === '1';
const CHANNEL_JOBS = envCount('BENCH_CHANNEL_JOBS', 20); // counted jobs per user and mode
const HELPER_MODES = ['auto', 'api', 'bundled'] as const;
type HelperMode = (typeof HELPER_MODES)[number];
/** The sshd DEBUG1 line of a session channel open (one per exec/shell/subsystem). */
const SESSION_OPEN = /server_input_channel_open: ctype session /;
const CHDIR_NOISE = /Could not chdir to home directory/;

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

interface ChannelCount {
  jobs: number;
  /** `server_input_channel_open: ctype session` lines over the counted jobs. */
  sessionChannels: number;
  perJob: number;
  /** Session channels opened from one job's POST to the next job's POST (the last: to the
   * settled end), i.e. the job's own channel(s) and the standby opened after it. */
  perJobCounts: number[];
  /** `Starting session:` lines (exec, shell or subsystem requests) in the same window. */
  sessionStarts: number;
  /** Every channel type opened in the window (`ctype …`), with its count. */
  channelTypes: Record<string, number>;
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
  // A second sshd, only for counting channels: DEBUG1 logs every channel open, which would
  // slow the sshd the latencies are measured on (for every tool alike, but still).
  const chSshd: SshdInstance = await startSshd({ logLevel: 'DEBUG1' });
  onCleanup('sshd (channel count)', () => chSshd.stop());
  const testUser = (await ensureTestUser()).username;
  const noHome = ensureNoHomeUser();
  const users = [testUser, noHome.username, ...(WITH_ROOT ? [sshd.username] : [])];
  const keyFile = sshd.key.privateKeyPath!;
  const knownHosts = path.join(benchDir, 'known_hosts');
  fs.writeFileSync(knownHosts, `[127.0.0.1]:${sshd.port} ${sshd.hostPublicKey}\n`);

  // baseDir for cronium: under the sshd dir (removed by sshd.stop()); the sshd dir is 0711
  // root-owned, so the non-root user's directory is created here and handed over.
  const baseDirOf = (user: string, s = sshd) => path.join(s.dir, `cronium-${user}`);
  for (const s of [sshd, chSshd]) {
    for (const user of users) {
      const dir = baseDirOf(user, s);
      fs.mkdirSync(dir, { mode: 0o700 });
      const { uid, gid } = idsOf(user);
      fs.chownSync(dir, uid, gid);
    }
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
  const rawExecFull = (user: string) =>
    new Promise<{ ms: number; stderr: string }>((resolve, reject) => {
      const t0 = nowMs();
      let out = '';
      let err = '';
      rawClients.get(user)!.exec('echo ok', (e, ch) => {
        if (e) return reject(e);
        ch.on('data', (d: Buffer) => (out += d.toString()));
        ch.stderr.on('data', (d: Buffer) => (err += d.toString()));
        ch.on('close', () =>
          out === 'ok\n'
            ? resolve({ ms: nowMs() - t0, stderr: err })
            : reject(new Error(`ssh2 raw: ${out}`)),
        );
      });
    });
  const rawExec = async (user: string) => (await rawExecFull(user)).ms;

  /** A job waited for with the long-poll: one GET, answered at its end. */
  const waitedJob = async (
    c: { user: string; serverId: string },
    helperMode?: HelperMode,
  ): Promise<number> => {
    const t0 = nowMs();
    const res = await api('POST', '/v1/jobs', {
      script: { type: 'bash', content: 'echo ok' },
      targets: { serverIds: [c.serverId] },
      ...(helperMode ? { helperMode } : {}),
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
  const loginStderr: Record<string, string> = {};
  for (const c of ctx) {
    loginStderr[c.user] = (await rawExecFull(c.user)).stderr;
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
  // The home-less user's login really does print to stderr (and the plain one's does not).
  if (!CHDIR_NOISE.test(loginStderr[noHome.username]))
    throw new Error(
      `login of ${noHome.username} printed no "Could not chdir" on stderr: ` +
        JSON.stringify(loginStderr[noHome.username]),
    );
  if (loginStderr[testUser] !== '')
    throw new Error(`login of ${testUser} printed to stderr: ${loginStderr[testUser]}`);

  // --- measured rounds ------------------------------------------------------------------
  console.error(
    `warm-latency: N=${N} rounds, users ${users.join(', ')}, sshd 127.0.0.1:${sshd.port}, service ${base}`,
  );
  const progressEvery = Math.max(1, Math.round(N / 10));
  const rand = seededRandom(SEED);
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
    // A new order each round, so no series always runs first, last, or right after another
    // (a cronium job's channel closes as the next task starts, and its server's next
    // standby starts up beside it: with a fixed rotation cronium-wait always came right
    // after its own user's polled job and paid for that standby's startup every time).
    for (const t of shuffled(tasks, rand)) await t();
    if ((i + 1) % progressEvery === 0) console.error(`  round ${i + 1}/${N}`);
  }

  // --- session channels per warm job, from the DEBUG1 log of the second sshd ------------
  // The service opens the next job's standby channel after a job, so over J sequential jobs
  // (after warm-up, and once the log has settled) the session channels opened are J when
  // every job takes exactly one: the standby it used was opened before the window, the one
  // opened after the last job is inside it.
  const countOpens = (text: string) => text.split('\n').filter((l) => SESSION_OPEN.test(l)).length;
  /** Waits until chSshd's log has had no new session channel open for quietMs. */
  const settle = async (quietMs = 750, maxMs = 10_000) => {
    let last = countOpens(chSshd.logs());
    let since = nowMs();
    const until = nowMs() + maxMs;
    while (nowMs() - since < quietMs && nowMs() < until) {
      await sleep(50);
      const n = countOpens(chSshd.logs());
      if (n !== last) {
        last = n;
        since = nowMs();
      }
    }
  };
  // Calibration: one plain `ssh … 'echo ok'` (one session channel) must count as 1, or this
  // sshd's log does not say what the count assumes.
  {
    fs.appendFileSync(knownHosts, `[127.0.0.1]:${chSshd.port} ${chSshd.hostPublicKey}\n`);
    await settle();
    const mark = chSshd.logs().length;
    // prettier-ignore
    const r = await runSsh([
      ...common.slice(0, -4),
      '-i', chSshd.key.privateKeyPath!,
      '-p', String(chSshd.port),
      ...freshOpts, dest(testUser), 'echo ok',
    ]);
    checkSsh(r, 'ssh calibration run on the channel-count sshd');
    await settle();
    const n = countOpens(chSshd.logs().slice(mark));
    if (n !== 1)
      throw new Error(`channel count calibration: one ssh run logged ${n} session channel opens`);
  }
  const channels: Record<string, Record<string, ChannelCount>> = {};
  console.error(
    `channels: ${CHANNEL_JOBS} jobs per user and helper mode on sshd 127.0.0.1:${chSshd.port} (DEBUG1)`,
  );
  for (const user of users) {
    const r = await svc.registerServer(chSshd, {
      name: `bench-channels-${user}`,
      username: user,
      baseDir: baseDirOf(user, chSshd),
    });
    const c = { user, serverId: r.body.id as string };
    channels[user] = {};
    for (const mode of HELPER_MODES) {
      svc.assertRunning();
      // warm-up: the pooled connection, the runner, a standby started after a job of this mode
      for (let i = 0; i < 2; i++) await waitedJob(c, mode);
      await settle();
      const marks = [chSshd.logs().length];
      for (let i = 0; i < CHANNEL_JOBS; i++) {
        await waitedJob(c, mode);
        if (i < CHANNEL_JOBS - 1) marks.push(chSshd.logs().length);
      }
      await settle();
      const text = chSshd.logs();
      marks.push(text.length);
      const window = text.slice(marks[0]);
      const perJob = marks.slice(1).map((end, i) => countOpens(text.slice(marks[i], end)));
      const types: Record<string, number> = {};
      for (const m of window.matchAll(/server_input_channel_open: ctype (\S+)/g))
        types[m[1]] = (types[m[1]] ?? 0) + 1;
      const opens = countOpens(window);
      channels[user][mode] = {
        jobs: CHANNEL_JOBS,
        sessionChannels: opens,
        perJob: opens / CHANNEL_JOBS,
        perJobCounts: perJob,
        sessionStarts: (window.match(/Starting session: /g) ?? []).length,
        channelTypes: types,
      };
    }
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
  const ok = (b: boolean) => (b ? 'met' : 'NOT met');
  console.log(
    `\ngoals: cronium p50 <= ssh-mux p50; with the long-poll <= 3x the floor, <= 0.75x ssh-mux`,
  );
  for (const c of ctx) {
    const f = floors[c.user];
    console.log(
      `  ${c.user.padEnd(widths[1])}  vs the floor ${f.waitVsRaw.toFixed(2)}x <= 3: ${ok(f.waitVsRaw <= 3)};` +
        `  vs ssh-mux ${f.waitVsMux.toFixed(2)}x <= 0.75: ${ok(f.waitVsMux <= 0.75)}`,
    );
  }

  console.log(
    `\nsession channels per warm cronium job (sshd DEBUG1 log, ${CHANNEL_JOBS} sequential long-poll` +
      ` jobs per cell after 2 warm-up jobs; goal: exactly 1)\n`,
  );
  const chRows = users.map((u) => [
    u,
    ...HELPER_MODES.map((m) => {
      const cc = channels[u][m];
      return `${cc.perJob.toFixed(2)} (${cc.sessionChannels} in ${cc.jobs} jobs)`;
    }),
  ]);
  printTable(['user', ...HELPER_MODES.map((m) => `helperMode ${m}`)], chRows, 1);
  const allOne = users.every((u) => HELPER_MODES.every((m) => channels[u][m].perJob === 1));
  console.log(`goal: exactly 1 session channel per warm job, every user and mode: ${ok(allOne)}`);

  writeResults('warm-latency', started, {
    params: {
      N,
      freshEvery: FRESH_EVERY,
      pollMs: POLL_MS,
      users,
      channelJobs: CHANNEL_JOBS,
      helperModes: HELPER_MODES,
      script: 'echo ok (bash)',
    },
    env: { node: process.version, openssh: opensshVersion(SSH), ...machineEnv(loadAtStart) },
    units: 'ms',
    results,
    loginStderr,
    channels,
  });
}

runBench(main);
