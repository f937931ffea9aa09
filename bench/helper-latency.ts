/**
 * `npm run bench helper-latency`: latency of one runtime-helper call,
 * `cronium.getVariable("k")` from a python script, through the per-execution SSH reverse
 * tunnel compared with a direct loopback HTTP call to the same API in the same process:
 *
 *   helper  tunnel   cronium.getVariable with CRONIUM_API_ENDPOINT as the runner set it
 *                    (127.0.0.1:<port sshd bound> → sshd → SSH channel → service)
 *   helper  direct   the same with CRONIUM_API_ENDPOINT=http://127.0.0.1:<runtime.loopbackPort>
 *                    (the service's own listener for the same API, same token)
 *   raw     tunnel / direct   the same HTTP request with http.client and nothing else (new
 *                    connection, `Connection: close`, as the helper does): transport only
 *   raw-ka  tunnel / direct   context: a keep-alive connection reused for a whole batch
 *                    (no TCP connect, and through the tunnel no new SSH channel, per call)
 *
 * One python job does all of it, timing each call with time.perf_counter() on the server
 * side, in interleaved blocks so machine noise hits every series alike. See bench/README.md.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isFinal } from '../test/support/service-process';
import { freePort, SshdInstance, startSshd } from '../test/support/sshd';
import {
  envCount,
  machineEnv,
  onCleanup,
  opensshVersion,
  percentile,
  printTable,
  runBench,
  startService,
  Stats,
  stats,
  writeResults,
} from './support';

const N = envCount('BENCH_N', 1000); // timed calls per series
const BLOCKS = envCount('BENCH_BLOCKS', 10); // N is split into this many interleaved blocks
const WARMUP = envCount('BENCH_WARMUP', 50); // untimed calls per series before the blocks
const GOAL_MS = 1; // the tunnel may add at most this much at p50 (helper series)
const USER_ID = 'bench';
const VAR_KEY = 'k';
const VAR_VALUE = 'v';
const MARK = 'HELPER_BENCH';

type Series =
  | 'helper-tunnel'
  | 'helper-direct'
  | 'raw-tunnel'
  | 'raw-direct'
  | 'raw-ka-tunnel'
  | 'raw-ka-direct';
const SERIES: Series[] = [
  'helper-tunnel',
  'helper-direct',
  'raw-tunnel',
  'raw-direct',
  'raw-ka-tunnel',
  'raw-ka-direct',
];

/**
 * The job's script. It prints `HELPER_BENCH {json}` lines: one `meta`, one line per
 * (block, series) with that batch's samples in ms, and `done`. Lines stay far below the
 * service's executor.maxLineBytes (64 KiB) with up to a few thousand samples per batch.
 *
 * helpers/cronium.py reads CRONIUM_API_ENDPOINT from os.environ on every call (nothing is
 * cached at import), so switching the endpoint is setting os.environ before each batch.
 */
const PYTHON = String.raw`
import http.client, json, os, sys, time
import cronium

MARK = "${MARK}"
N = int(os.environ["BENCH_N"])
BLOCKS = int(os.environ["BENCH_BLOCKS"])
WARMUP = int(os.environ["BENCH_WARMUP"])
KEY = "${VAR_KEY}"
EXPECT = "${VAR_VALUE}"

ENDPOINTS = {
    "tunnel": os.environ["CRONIUM_API_ENDPOINT"],  # as the runner gave it
    "direct": "http://127.0.0.1:%d" % int(os.environ["LOOPBACK_PORT"]),
}
TOKEN = os.environ["CRONIUM_API_TOKEN"]
PATH = "/runtime/v1/variables/" + KEY

def emit(obj):
    sys.stdout.write(MARK + " " + json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()

def hostport(endpoint):
    from urllib.parse import urlsplit
    u = urlsplit(endpoint)
    return u.hostname, u.port

def check_raw(status, data, what):
    if status != 200 or json.loads(data.decode("utf-8")).get("value") != EXPECT:
        raise SystemExit("%s: unexpected answer %d %r" % (what, status, data[:200]))

# The exact request cronium._request makes for getVariable (same headers, a new
# connection closed after the answer), without the library around it.
RAW_HEADERS = {
    "Authorization": "Bearer " + TOKEN,
    "Accept": "application/json",
    "Connection": "close",
}

def batch_helper(where, n):
    os.environ["CRONIUM_API_ENDPOINT"] = ENDPOINTS[where]
    pc, get = time.perf_counter, cronium.getVariable
    out = []
    for _ in range(n):
        t0 = pc()
        v = get(KEY)
        t1 = pc()
        if v != EXPECT:
            raise SystemExit("helper %s: getVariable returned %r" % (where, v))
        out.append((t1 - t0) * 1000.0)
    return out

def batch_raw(where, n):
    host, port = hostport(ENDPOINTS[where])
    pc, HC = time.perf_counter, http.client.HTTPConnection
    out = []
    for _ in range(n):
        t0 = pc()
        conn = HC(host, port)
        try:
            conn.request("GET", PATH, headers=RAW_HEADERS)
            resp = conn.getresponse()
            data = resp.read()
            status = resp.status
        finally:
            conn.close()
        t1 = pc()
        check_raw(status, data, "raw " + where)
        out.append((t1 - t0) * 1000.0)
    return out

KA_HEADERS = {"Authorization": "Bearer " + TOKEN, "Accept": "application/json"}

def batch_raw_ka(where, n):
    # One keep-alive connection per batch, opened (and used once) before the clock starts.
    host, port = hostport(ENDPOINTS[where])
    pc = time.perf_counter
    conn = http.client.HTTPConnection(host, port)
    out = []
    try:
        conn.request("GET", PATH, headers=KA_HEADERS)
        r = conn.getresponse()
        check_raw(r.status, r.read(), "raw-ka " + where)
        for _ in range(n):
            t0 = pc()
            conn.request("GET", PATH, headers=KA_HEADERS)
            resp = conn.getresponse()
            data = resp.read()
            status = resp.status
            t1 = pc()
            check_raw(status, data, "raw-ka " + where)
            out.append((t1 - t0) * 1000.0)
    finally:
        conn.close()
    return out

RUN = {
    "helper-tunnel": lambda n: batch_helper("tunnel", n),
    "helper-direct": lambda n: batch_helper("direct", n),
    "raw-tunnel": lambda n: batch_raw("tunnel", n),
    "raw-direct": lambda n: batch_raw("direct", n),
    "raw-ka-tunnel": lambda n: batch_raw_ka("tunnel", n),
    "raw-ka-direct": lambda n: batch_raw_ka("direct", n),
}
ORDER = list(RUN)

emit({"type": "meta", "python": sys.version.split()[0], "executable": sys.executable,
      "endpoints": ENDPOINTS, "n": N, "blocks": BLOCKS, "warmup": WARMUP})

t_start = time.perf_counter()
for s in ORDER:
    RUN[s](WARMUP)
emit({"type": "warmup", "ms": (time.perf_counter() - t_start) * 1000.0})

# Blocks of about N/BLOCKS calls per series; the series order is rotated every block and
# reversed every other one, so no series always runs first, last or after the same one.
sizes = [N // BLOCKS + (1 if b < N % BLOCKS else 0) for b in range(BLOCKS)]
for b, size in enumerate(sizes):
    order = ORDER[b % len(ORDER):] + ORDER[:b % len(ORDER)]
    if b % 2:
        order.reverse()
    for s in order:
        samples = RUN[s](size)
        emit({"type": "batch", "block": b, "series": s, "ms": [round(x, 4) for x in samples]})
emit({"type": "done", "ms": (time.perf_counter() - t_start) * 1000.0})
`;

const round3 = (x: number) => Math.round(x * 1000) / 1000;

async function main(): Promise<void> {
  const started = Date.now();
  const loadAtStart = os.loadavg();
  if (N < BLOCKS) throw new Error(`BENCH_N (${N}) must be at least BENCH_BLOCKS (${BLOCKS})`);

  // --- sshd ----------------------------------------------------------------------------
  const sshd: SshdInstance = await startSshd();
  onCleanup('sshd', () => sshd.stop());
  // baseDir for cronium: under the sshd dir (removed by sshd.stop()), harness user (root).
  const baseDir = path.join(sshd.dir, `cronium-${sshd.username}`);
  fs.mkdirSync(baseDir, { mode: 0o700 });

  // --- the service, with the runtime API also on a loopback port -----------------------
  const port = await freePort();
  let loopbackPort = await freePort();
  while (loopbackPort === port) loopbackPort = await freePort();
  const svc = await startService({
    port,
    env: {
      CRONIUM__RUNTIME__LOOPBACK_PORT: String(loopbackPort),
      CRONIUM__RUNTIME__RATE_PER_SECOND: '100000',
      CRONIUM__RUNTIME__BURST: '100000',
    },
  });
  const { api, base } = svc;

  // The loopback listener must be up (and speak the runtime API: 401 without a token).
  const probe = await fetch(`http://127.0.0.1:${loopbackPort}/runtime/v1/context`);
  await probe.text();
  if (probe.status !== 401) {
    throw new Error(`runtime loopback listener on ${loopbackPort} answered ${probe.status}`);
  }

  const srv = await svc.registerServer(sshd, { name: `bench-${sshd.username}`, baseDir });
  const serverId: string = srv.body.id;

  const put = await api('PUT', `/v1/variables/${USER_ID}/${VAR_KEY}`, { value: VAR_VALUE });
  if (put.status !== 200) {
    throw new Error(`PUT /v1/variables: ${put.status} ${JSON.stringify(put.body)}`);
  }

  // --- the job -------------------------------------------------------------------------
  console.error(
    `helper-latency: N=${N} per series in ${BLOCKS} blocks (+${WARMUP} warm-up), ` +
      `sshd 127.0.0.1:${sshd.port}, service ${base}, runtime loopback 127.0.0.1:${loopbackPort}`,
  );
  const job = await api('POST', '/v1/jobs', {
    name: 'helper-latency',
    script: { type: 'python', content: PYTHON },
    targets: { serverIds: [serverId] },
    helperMode: 'api',
    userId: USER_ID,
    env: {
      LOOPBACK_PORT: String(loopbackPort),
      BENCH_N: String(N),
      BENCH_BLOCKS: String(BLOCKS),
      BENCH_WARMUP: String(WARMUP),
    },
    timeoutSeconds: 1800,
  });
  if (job.status !== 202)
    throw new Error(`POST /v1/jobs: ${job.status} ${JSON.stringify(job.body)}`);
  const id: string = job.body.id;

  let lastProgress = 0;
  let seen = 0;
  const ex = await svc.waitForExecution(id, {
    pollMs: 250,
    onPoll: async (polled) => {
      if (isFinal(polled?.status) || Date.now() - lastProgress <= 10_000) return;
      lastProgress = Date.now();
      const part = await api('GET', `/v1/executions/${id}/logs?afterSeq=${seen}&limit=1000`);
      const batches = (part.body?.entries ?? []).filter((e: any) =>
        String(e.text).startsWith(`${MARK} {"type":"batch"`),
      ).length;
      seen = part.body?.nextSeq ?? seen;
      if (batches) console.error(`  +${batches} batches`);
    },
  });

  // All log entries, paged.
  const entries: any[] = [];
  for (let after = 0; ; ) {
    const r = await api('GET', `/v1/executions/${id}/logs?afterSeq=${after}&limit=1000`);
    if (r.status !== 200) throw new Error(`GET logs: ${r.status} ${JSON.stringify(r.body)}`);
    entries.push(...r.body.entries);
    if (!r.body.entries.length || r.body.nextSeq === after) break;
    after = r.body.nextSeq;
  }
  const target = ex.targets?.[0];
  if (ex.status !== 'succeeded') {
    const tail = entries
      .slice(-20)
      .map((e) => `${e.stream}: ${e.text}`)
      .join('\n');
    throw new Error(
      `the job ended ${ex.status}: ${JSON.stringify(target?.error ?? target)}\nlast log lines:\n${tail}`,
    );
  }

  const samples = Object.fromEntries(SERIES.map((s) => [s, [] as number[]])) as Record<
    Series,
    number[]
  >;
  const perBlock: Record<string, Record<number, number>> = {}; // series → block → p50
  let meta: any = null;
  let done: any = null;
  let warmup: any = null;
  for (const e of entries) {
    if (e.stream !== 'stdout' || typeof e.text !== 'string' || !e.text.startsWith(MARK + ' '))
      continue;
    const m = JSON.parse(e.text.slice(MARK.length + 1));
    if (m.type === 'meta') meta = m;
    else if (m.type === 'warmup') warmup = m;
    else if (m.type === 'done') done = m;
    else if (m.type === 'batch') {
      const s = m.series as Series;
      if (!samples[s]) throw new Error(`unknown series ${s}`);
      samples[s].push(...m.ms);
      (perBlock[s] ??= {})[m.block] = percentile(m.ms, 50);
    }
  }
  if (!meta || !done) throw new Error('the script output is incomplete (no meta or done line)');
  for (const s of SERIES) {
    if (samples[s].length !== N) {
      throw new Error(`series ${s}: ${samples[s].length} samples, expected ${N}`);
    }
  }

  // --- report ---------------------------------------------------------------------------
  const st = Object.fromEntries(SERIES.map((s) => [s, stats(samples[s])])) as Record<Series, Stats>;
  const label: Record<Series, [string, string]> = {
    'helper-tunnel': ['cronium.getVariable', 'tunnel'],
    'helper-direct': ['cronium.getVariable', 'direct'],
    'raw-tunnel': ['raw http.client', 'tunnel'],
    'raw-direct': ['raw http.client', 'direct'],
    'raw-ka-tunnel': ['raw keep-alive', 'tunnel'],
    'raw-ka-direct': ['raw keep-alive', 'direct'],
  };
  const rows = SERIES.map((s) => [
    ...label[s],
    String(st[s].n),
    ...[st[s].p50, st[s].p95, st[s].mean, st[s].min].map((x) => x.toFixed(3)),
  ]);
  const header = ['call', 'path', 'n', 'p50 ms', 'p95 ms', 'mean ms', 'min ms'];

  const diff = (a: Series, b: Series) => ({
    p50: st[a].p50 - st[b].p50,
    p95: st[a].p95 - st[b].p95,
    mean: st[a].mean - st[b].mean,
  });
  const diffs = {
    'helper tunnel − direct': diff('helper-tunnel', 'helper-direct'),
    'raw tunnel − direct': diff('raw-tunnel', 'raw-direct'),
    'raw keep-alive tunnel − direct': diff('raw-ka-tunnel', 'raw-ka-direct'),
    'helper − raw (tunnel)': diff('helper-tunnel', 'raw-tunnel'),
    'helper − raw (direct)': diff('helper-direct', 'raw-direct'),
  };
  // Per-block p50 differences: how stable the tunnel cost is across the run.
  const blockDiffs = Array.from({ length: BLOCKS }, (_, b) =>
    round3(perBlock['helper-tunnel'][b] - perBlock['helper-direct'][b]),
  );

  console.log(
    `\none runtime-helper call from python: cronium.getVariable("${VAR_KEY}") through the SSH ` +
      `reverse tunnel vs direct loopback HTTP\nN=${N} per series, ${BLOCKS} interleaved blocks, ` +
      `${WARMUP} warm-up calls per series, python ${meta.python}\n`,
  );
  printTable(header, rows, 2);
  console.log('');
  const dw = Math.max(...Object.keys(diffs).map((k) => k.length));
  for (const [k, d] of Object.entries(diffs)) {
    const sign = (x: number) => (x >= 0 ? '+' : '') + x.toFixed(3);
    console.log(
      `${k.padEnd(dw)}  p50 ${sign(d.p50)} ms  p95 ${sign(d.p95)} ms  mean ${sign(d.mean)} ms`,
    );
  }
  console.log(`per-block p50 (helper tunnel − direct), ms: ${blockDiffs.join(' ')}`);
  const added = diffs['helper tunnel − direct'].p50;
  console.log(
    `\ngoal: the tunnel adds <= ${GOAL_MS.toFixed(1)} ms at p50 (helper series): ` +
      `${added.toFixed(3)} ms → ${added <= GOAL_MS ? 'met' : 'NOT met'}`,
  );
  console.log(
    `execution phases: tunnelMs ${target?.phases?.tunnelMs}, runMs ${target?.phases?.runMs}; ` +
      `script: warm-up ${Math.round(warmup?.ms ?? NaN)} ms, total ${Math.round(done.ms)} ms; ` +
      `loadavg ${loadAtStart.map((x) => x.toFixed(2)).join(' ')} → ` +
      `${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')} on ${os.cpus().length} CPUs`,
  );

  writeResults('helper-latency', started, {
    params: {
      N,
      blocks: BLOCKS,
      warmup: WARMUP,
      ratePerSecond: 100000,
      burst: 100000,
      helper: `cronium.getVariable("${VAR_KEY}") (python)`,
    },
    env: {
      node: process.version,
      python: meta.python,
      pythonExecutable: meta.executable,
      openssh: opensshVersion('/usr/sbin/sshd').split('\n')[0],
      ...machineEnv(loadAtStart),
    },
    endpoints: meta.endpoints,
    execution: { id, phases: target?.phases ?? null, warmupMs: warmup?.ms, scriptMs: done.ms },
    units: 'ms',
    stats: Object.fromEntries(
      SERIES.map((s) => [
        s,
        Object.fromEntries(Object.entries(st[s]).map(([k, x]) => [k, round3(x)])),
      ]),
    ),
    differences: Object.fromEntries(
      Object.entries(diffs).map(([k, d]) => [
        k,
        { p50: round3(d.p50), p95: round3(d.p95), mean: round3(d.mean) },
      ]),
    ),
    perBlockP50: Object.fromEntries(
      SERIES.map((s) => [s, Array.from({ length: BLOCKS }, (_, b) => round3(perBlock[s][b]))]),
    ),
    goal: { tunnelAddsAtP50MsAtMost: GOAL_MS, measured: round3(added), met: added <= GOAL_MS },
    samples,
  });
}

runBench(main);
