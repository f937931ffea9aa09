/**
 * `npm run bench ui`: the live view (/ui) in headless Chromium on one execution of
 * BENCH_TARGETS (500) targets that print for BENCH_SECONDS (300) while the page shows it.
 *
 * A warm-up job (`true`, 50 at a time) deploys the runner on every server first. Then
 * every target prints one stdout line a second and one stderr line every 10 s, so the page
 * takes ~550 websocket updates a second for the grid, plus one target's log (opened, like
 * a user would). Measured in the page:
 *   frame time  requestAnimationFrame deltas over the live period (p50 / p95 / p99 / max),
 *               and long tasks (> 50 ms) from PerformanceObserver
 *   memory      JS heap (CDP Runtime.getHeapUsage) once the grid is shown, every minute
 *               and at the end, each after a forced GC (HeapProfiler.collectGarbage)
 *   DOM         grid cells present (windowing: only those in view exist)
 *
 * "N servers" are N (address, port) endpoints on K sshd processes (BENCH_SSHD, default
 * N / 15: sshd listens on at most 16 sockets), as in bench/fanout.ts. Chromium: CHROMIUM_PATH, default /usr/bin/chromium.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium } from 'playwright-core';
import { isFinal } from '../test/support/service-process';
import {
  envCount,
  machineEnv,
  onCleanup,
  percentile,
  runBench,
  sleep,
  startFleetSshds,
  startService,
  writeResults,
} from './support';

const N = envCount('BENCH_TARGETS', 500);
const SECONDS = envCount('BENCH_SECONDS', 300);
/** sshd listens on at most 16 sockets (MAX_LISTEN_SOCKS): 15 loopback addresses each. */
const ADDRS_PER_SSHD = 15;
const K = envCount('BENCH_SSHD', Math.ceil(N / ADDRS_PER_SSHD));
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const TAG = 'ui-bench';

async function main(): Promise<void> {
  const started = Date.now();
  const loadAtStart = os.loadavg();
  const addrs = Math.ceil(N / K);
  if (addrs > ADDRS_PER_SSHD)
    throw new Error(
      `BENCH_TARGETS / BENCH_SSHD needs ${addrs} addresses per sshd (> ${ADDRS_PER_SSHD})`,
    );
  const sshds = await startFleetSshds(K, addrs);

  const svc = await startService({
    env: {
      // every target at once: the page must show N live targets, not a queue
      CRONIUM__EXECUTOR__GLOBAL_CONCURRENCY: String(N),
    },
  });
  console.log(`registering ${N} servers on ${K} sshd…`);
  const queue = Array.from({ length: N }, (_, i) => i);
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
        const sshd = sshds[i % K];
        const baseDir = path.join(sshd.dir, `cronium-ui-${i}`);
        fs.mkdirSync(baseDir, { mode: 0o700 }); // owned by the SSH user, as the service requires
        await svc.registerServer(sshd, {
          name: `node-${String(i).padStart(3, '0')}`,
          host: `127.0.0.${1 + Math.floor(i / K)}`,
          baseDir,
          tags: [TAG],
        });
      }
    }),
  );

  // Deploy the runner everywhere first, 50 at a time: 500 deployments at once time out on a
  // loaded 2-core machine, and the measured run is about the page, not about deploying.
  console.log('deploying the runner on every server…');
  const warm = await svc.api('POST', '/v1/jobs', {
    name: 'ui-bench-warm-up',
    helperMode: 'bundled',
    concurrency: 50,
    script: { type: 'bash', content: 'true' },
    targets: { tags: [TAG] },
  });
  if (warm.status !== 202)
    throw new Error(`warm-up POST /v1/jobs: ${warm.status} ${JSON.stringify(warm.body)}`);
  const warmed = await svc.waitForExecution(warm.body.id, { pollMs: 1000 });
  console.log(`  warm-up ${warmed.status}: ${JSON.stringify(warmed.summary)}`);

  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  onCleanup('chromium', () => browser.close());
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const cdp = await page.context().newCDPSession(page);
  let wsFrames = 0;
  page.on('websocket', (ws) => ws.on('framereceived', () => wsFrames++));
  const heapMiB = async () => {
    await cdp.send('HeapProfiler.collectGarbage');
    const { usedSize } = (await cdp.send('Runtime.getHeapUsage')) as { usedSize: number };
    return Math.round((usedSize / 2 ** 20) * 10) / 10;
  };

  await page.goto(`${svc.base}/ui/`);
  await page.fill('#token', svc.token);
  await page.click('form.login button');
  await page.waitForSelector('#executions');

  const job = await svc.api('POST', '/v1/jobs', {
    name: 'ui-bench',
    helperMode: 'bundled',
    concurrency: N,
    timeoutSeconds: SECONDS + 600,
    script: {
      type: 'bash',
      content:
        `for i in $(seq 1 ${SECONDS}); do echo "line $i from $(hostname)"; ` +
        `[ $((i % 10)) = 0 ] && echo "warning $i" >&2; sleep 1; done; echo done`,
    },
    targets: { tags: [TAG] },
  });
  if (job.status !== 202)
    throw new Error(`POST /v1/jobs: ${job.status} ${JSON.stringify(job.body)}`);
  const id: string = job.body.id;
  const t0 = Date.now();
  await page.goto(`${svc.base}/ui/#/x/${id}`);
  await page.waitForFunction(
    (n) =>
      document.querySelectorAll('#grid .cell').length > 0 &&
      document.querySelector('.counts')?.textContent?.startsWith(`${n} targets`),
    N,
  );
  const gridShownMs = Date.now() - t0;
  const cellsInDom = await page.locator('#grid .cell').count();
  await page.locator('#grid .cell').nth(3).click();
  const heapAtStart = await heapMiB();

  // rAF deltas and long tasks, collected in the page from now on
  await page.evaluate(() => {
    const w = window as any;
    w.__frames = [] as number[];
    w.__longTasks = 0;
    let last = performance.now();
    const loop = (t: number) => {
      w.__frames.push(t - last);
      last = t;
      if (!w.__stop) requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
    new PerformanceObserver((l) => (w.__longTasks += l.getEntries().length)).observe({
      type: 'longtask',
    });
  });

  // wait until every target runs, then sample the heap every minute until the end
  // runningCellsInView: windowed, so only the cells in view exist to be counted
  const heapSamples: { atSeconds: number; heapMiB: number; runningCellsInView: number }[] = [];
  const running = () => page.locator('#grid .cell.st-running').count();
  let ex: any;
  let next = Date.now() + 60_000;
  for (;;) {
    await sleep(1000);
    svc.assertRunning();
    // a failed poll (the service busy with 500 connections) is retried, not fatal
    ex = await svc.api('GET', `/v1/executions/${id}`).then(
      (r) => r.body,
      () => undefined,
    );
    if (isFinal(ex?.status)) break;
    if (Date.now() >= next) {
      next += 60_000;
      heapSamples.push({
        atSeconds: Math.round((Date.now() - t0) / 1000),
        heapMiB: await heapMiB(),
        runningCellsInView: await running(),
      });
      console.log(`  ${JSON.stringify(heapSamples[heapSamples.length - 1])}`);
      if (heapSamples.length === 1)
        await page.screenshot({ path: path.join(os.tmpdir(), 'cronium-ui-bench-live.png') });
    }
  }
  await page.waitForFunction(
    (n) => document.querySelector('.counts')?.textContent?.includes(`${n} succeeded`),
    ex.summary.succeeded,
    { timeout: 60_000 },
  );
  const liveSeconds = Math.round((Date.now() - t0) / 1000);
  const { frames, longTasks } = await page.evaluate(() => {
    const w = window as any;
    w.__stop = true;
    return { frames: w.__frames as number[], longTasks: w.__longTasks as number };
  });
  const heapAtEnd = await heapMiB();
  const logLines = await page.locator('#log header .muted').textContent();
  await page.screenshot({ path: path.join(os.tmpdir(), 'cronium-ui-bench.png') });
  const f = frames.slice(1);
  const round = (x: number) => Math.round(x * 10) / 10;
  const frameMs = {
    count: f.length,
    p50: round(percentile(f, 50)),
    p95: round(percentile(f, 95)),
    p99: round(percentile(f, 99)),
    max: round(Math.max(...f)),
    over50ms: f.filter((x) => x > 50).length,
  };
  const errors: Record<string, number> = {};
  for (const t of ex.targets) {
    if (t.error) {
      const k = `${t.error.code}: ${t.error.message}`.slice(0, 160);
      errors[k] = (errors[k] ?? 0) + 1;
    }
  }
  const result = {
    warmUp: { status: warmed.status, summary: warmed.summary },
    execution: { status: ex.status, summary: ex.summary, errors },
    gridShownMs,
    cellsInDom,
    liveSeconds,
    websocketFramesReceived: wsFrames,
    frameMs,
    longTasks,
    heapMiB: { atStart: heapAtStart, samples: heapSamples, atEnd: heapAtEnd },
    openLog: logLines,
  };
  console.log(JSON.stringify(result, null, 2));
  writeResults('ui', started, {
    config: { targets: N, seconds: SECONDS, sshd: K, chromium: CHROMIUM },
    env: { node: process.version, ...machineEnv(loadAtStart) },
    ...result,
  });
}

runBench(main);
