import * as fs from 'node:fs';
import * as path from 'node:path';
import { startServiceProcess, ServiceProcess } from './support/service-process';
import { ensureTestUser, SshdInstance, sh, startSshd } from './support/sshd';

/**
 * 1,000 jobs over 10 real sshd's against the built service as its own process: API and
 * bundled helpers, bash, python and node. Every job ends with its result, nothing stays
 * running, and the service's open fds come back to where they were. RSS before, at its
 * peak and after is printed for the record (a number, not a pass/fail bound).
 *
 * Most servers log in as a plain user; ROOT_SERVERS log in as root, whose .bashrc on
 * this machine runs `pyenv init` (slow, and its rehash lock serialises login shells):
 * a login environment like many real hosts have, which the service must not trip over.
 */
const SERVERS = 10;
const JOBS = 1000;
const IN_FLIGHT = 40;
const IDLE_MS = 1500;
const ROOT_SERVERS = 2;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function procStatus(pid: number): { rssKb: number; hwmKb: number } {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0);
  return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
}
const openFds = (pid: number) => fs.readdirSync(`/proc/${pid}/fd`).length;

const SCRIPTS: Record<string, (n: number) => string> = {
  bash: (n) =>
    `echo "job ${n}"; cronium.setVariable "load-${n % 7}" '${n}'; cronium.output '{"n":${n}}'`,
  python: (n) =>
    `print("job ${n}")\ncronium.setVariable("load-${n % 7}", ${n})\ncronium.output({"n": ${n}})`,
  node: (n) =>
    `console.log("job ${n}");\n(async () => { await cronium.setVariable("load-${n % 7}", ${n}); await cronium.output({ n: ${n} }); })();`,
};
const TYPES = Object.keys(SCRIPTS);

describe('load: 1,000 jobs over 10 sshd (real service process)', () => {
  const sshds: SshdInstance[] = [];
  let svc: ServiceProcess;
  const serverIds: string[] = [];

  beforeAll(async () => {
    for (let i = 0; i < SERVERS; i++) sshds.push(await startSshd());
    svc = await startServiceProcess({
      env: { NODE_ENV: 'test', LOG_LEVEL: 'warn', CRONIUM__SSH__IDLE_TIMEOUT_MS: String(IDLE_MS) },
    });
    await svc.waitReady();
    const user = (await ensureTestUser()).username;
    for (const [i, s] of sshds.entries()) {
      const plain = i >= ROOT_SERVERS;
      const baseDir = path.join(s.dir, plain ? `cronium-${user}` : 'cronium-root');
      fs.mkdirSync(baseDir, { mode: 0o700 });
      if (plain) await sh(`chown ${user}: ${baseDir}`);
      const extra = plain ? { username: user, baseDir } : { baseDir };
      serverIds.push((await svc.registerServer(s, { name: `load-${i}`, ...extra })).body.id);
    }
  }, 120_000);
  afterAll(async () => {
    await svc?.stop();
    await Promise.all(sshds.map((s) => s.stop()));
  });

  const submit = async (n: number) => {
    const type = TYPES[n % TYPES.length];
    const res = await svc.api('POST', '/v1/jobs', {
      script: { type, content: SCRIPTS[type](n) },
      helperMode: n % 2 ? 'bundled' : 'api',
      targets: { serverIds: [serverIds[n % SERVERS]] },
    });
    if (res.status !== 202) throw new Error(`job ${n}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.id as string;
  };

  /** Waits until the pool has let go of idle connections: fds stop falling. */
  const settledFds = async () => {
    let last = openFds(svc.child.pid!);
    for (let i = 0; i < 20; i++) {
      await sleep(IDLE_MS);
      const now = openFds(svc.child.pid!);
      if (now >= last) return now;
      last = now;
    }
    return last;
  };

  it('all finish with their results, none stuck, fds back to baseline', async () => {
    const pid = svc.child.pid!;
    // warm: one job per server deploys its runner
    for (let n = 0; n < SERVERS; n++) {
      const ex = await svc.waitForExecution(await submit(n), { timeoutMs: 60_000, pollMs: 50 });
      expect(ex.status).toBe('succeeded');
    }
    const fdsBefore = await settledFds();
    const before = procStatus(pid);

    const started = Date.now();
    const failures: string[] = [];
    let next = 0;
    let peakRss = before.rssKb;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, procStatus(pid).rssKb);
    }, 200);
    const worker = async () => {
      for (let n = next++; n < JOBS; n = next++) {
        const id = await submit(n);
        const ex = await svc.waitForExecution(id, { timeoutMs: 120_000, pollMs: 100 });
        const t = ex.targets[0];
        if (ex.status !== 'succeeded' || t.exitCode !== 0 || t.output?.n !== n) {
          failures.push(`job ${n} (${id}): ${ex.status} ${JSON.stringify(t)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    clearInterval(sampler);
    const seconds = (Date.now() - started) / 1000;
    expect(failures).toEqual([]);

    const running = await svc.api('GET', '/v1/executions?status=running&limit=10');
    expect(running.status).toBe(200);
    expect(running.body.items).toHaveLength(0);
    const queued = await svc.api('GET', '/v1/executions?status=queued&limit=10');
    expect(queued.body.items).toHaveLength(0);
    for (let i = 0; i < 7; i++) {
      const v = await svc.api('GET', `/v1/variables/default/load-${i}`);
      expect(v.status).toBe(200);
      expect(Number(v.body.value) % 7).toBe(i);
    }

    // Idle connections go after IDLE_MS (a standby still opening on a slow login shell
    // holds its connection a little longer): a leak would never come back.
    let fdsAfter = openFds(pid);
    for (const until = Date.now() + 30_000; fdsAfter > fdsBefore + 5 && Date.now() < until; ) {
      await sleep(500);
      fdsAfter = openFds(pid);
    }
    const after = procStatus(pid);
    console.log(
      `load: ${JOBS} jobs over ${SERVERS} sshd in ${seconds.toFixed(1)} s ` +
        `(${(JOBS / seconds).toFixed(1)} jobs/s, ${IN_FLIGHT} in flight); ` +
        `fds ${fdsBefore} -> ${fdsAfter}; RSS before ${Math.round(before.rssKb / 1024)} MB, ` +
        `peak ${Math.round(Math.max(peakRss, after.hwmKb) / 1024)} MB, after ${Math.round(after.rssKb / 1024)} MB`,
    );
    // a leak of one fd per job would show as hundreds; the pool and the runtime may differ by a few
    expect(fdsAfter).toBeLessThanOrEqual(fdsBefore + 5);
  }, 600_000);
});
