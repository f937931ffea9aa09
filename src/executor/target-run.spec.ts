/**
 * One target's phases against a real sshd and the real runner, with small fakes of our
 * own collaborators (runner cache, runtime helpers): statuses in order, outcomes for
 * success, failure, cancel, timeout, unreachable hosts, a vanished runner and bundled
 * collection.
 */
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FakeHelpers, FakeRunnerCache } from '../../test/support/executor-fakes';
import { endpointOf, freePort, SshdInstance, startSshd, stopAll } from '../../test/support/sshd';
import { testConfig } from '../../test/support/config';
import { AppConfig } from '../config/app-config';
import { MetricsService } from '../metrics/metrics.service';
import type { TargetStatus } from '../executions/statuses';
import type { ExecutionRecord } from '../executions/records';
import { RunnerChannels } from '../runner/runner-channels';
import { SshPool } from '../ssh/ssh-pool.service';
import type { SshEndpoint } from '../ssh/ssh.types';
import type { ExecutionPlan, TargetPlan } from './execution-plan';
import { TargetRun, TargetRunDeps } from './target-run';

jest.setTimeout(60000);

let sshd: SshdInstance;
let dir: string;
let config: AppConfig;
let pool: SshPool;
let targetSeq = 0;

beforeAll(async () => {
  Logger.overrideLogger(['error']);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-target-run-'));
  sshd = await startSshd();
  config = testConfig(path.join(dir, 'data'));
  pool = new SshPool(config, new MetricsService());
});

afterAll(async () => {
  await pool?.onApplicationShutdown();
  await sshd?.stop();
  await stopAll();
  fs.rmSync(dir, { recursive: true, force: true });
});

interface Harness {
  run: TargetRun;
  statuses: TargetStatus[];
  logs: { stream: string; text: string }[];
  cache: FakeRunnerCache;
  helpers: FakeHelpers;
}

function endpoint(over: Partial<SshEndpoint> = {}): SshEndpoint {
  return endpointOf(sshd, { serverId: 'srv-1', serverName: 'web-1', ...over });
}

function harness(
  script: string,
  opts: { timeoutSeconds?: number; endpoint?: SshEndpoint; baseDir?: string } = {},
): Harness {
  const statuses: TargetStatus[] = [];
  const logs: { stream: string; text: string }[] = [];
  const cache = new FakeRunnerCache();
  const helpers = new FakeHelpers();
  const deps: TargetRunDeps = {
    pool,
    runnerCache: cache,
    runnerChannels: new RunnerChannels(false, config.ssh.channelOpenRetry),
    helpers,
    limits: {
      capBytes: 1 << 20,
      maxLineBytes: 4096,
      killGraceSeconds: 1,
      collectTimeoutMs: 10000,
      channelOpenRetry: { attempts: 3, initialDelayMs: 50, factor: 2, maxDelayMs: 200 },
      leaseSeconds: 10,
      heartbeatMs: 1000,
      reattachBackoff: config.runner.reattachBackoff,
    },
    replicaId: 'replica-test',
    setStatus: async (status, _patch, how) => {
      if (how?.announce !== false) statuses.push(status);
    },
    log: (stream, text) => logs.push({ stream, text }),
  };
  const execution = { id: `exec-${++targetSeq}`, jobId: null, eventId: null, userId: 'u1' };
  const target: TargetPlan = {
    targetId: `target-${process.pid}-${targetSeq}`,
    position: 0,
    serverId: 'srv-1',
    serverName: 'web-1',
    baseDir: opts.baseDir ?? path.join(dir, 'base'),
    endpoint: async () => opts.endpoint ?? endpoint(),
  };
  const plan: ExecutionPlan = {
    execution: execution as ExecutionRecord,
    targets: [target],
    script: { type: 'bash', content: script },
    env: { WHO: 'tester' },
    input: { n: 1 },
    timeoutSeconds: opts.timeoutSeconds ?? 30,
    helperMode: 'bundled',
    concurrency: 1,
    maxErrors: null,
    failFast: false,
    priorFailures: 0,
  };
  return { run: new TargetRun(deps, plan, target), statuses, logs, cache, helpers };
}

const lines = (h: Harness, stream: string) =>
  h.logs.filter((l) => l.stream === stream).map((l) => l.text);

describe('TargetRun', () => {
  it('connects, deploys, runs and succeeds, with statuses in order and phases measured', async () => {
    const h = harness(
      'echo "hello $WHO from $CRONIUM_SERVER_ID"; cat "$CRONIUM_RUN_DIR/input.json" 2>/dev/null || true',
    );
    const out = await h.run.run();
    expect(out).toMatchObject({ status: 'succeeded', exitCode: 0, signal: null, error: null });
    expect(h.statuses).toEqual(['connecting', 'deploying', 'running']);
    expect(lines(h, 'stdout')[0]).toBe('hello tester from srv-1');
    expect(lines(h, 'system').some((l) => l.startsWith('runner deployed'))).toBe(true);
    expect(lines(h, 'system').some((l) => /^runner \S+ on .*; helper mode bundled$/.test(l))).toBe(
      true,
    );
    expect(out.phases.connectMs).not.toBeNull();
    expect(out.phases.deployMs).not.toBeNull();
    expect(out.phases.runMs).not.toBeNull();
    expect(out.finishedAt).toBeGreaterThanOrEqual(out.startedAt);
    expect(h.helpers.requests[0]).toMatchObject({ mode: 'bundled', input: { n: 1 }, userId: 'u1' });
    expect(h.helpers.released).toBeGreaterThan(0);
  });

  it('skips the deploying status when the cached runner is trusted', async () => {
    const h = harness('exit 0');
    h.cache.trusted = true;
    h.cache.deployed = true;
    await h.run.run();
    expect(h.statuses).toEqual(['connecting', 'running']);
  });

  it('a non-zero exit is a failed target with its exact code and no error', async () => {
    const h = harness('echo bad >&2; exit 7');
    const out = await h.run.run();
    expect(out).toMatchObject({ status: 'failed', exitCode: 7, error: null });
    expect(lines(h, 'stderr')).toEqual(['bad']);
  });

  it('stop("cancelled") mid-run ends the target cancelled', async () => {
    const h = harness('echo up; sleep 30');
    const done = h.run.run();
    while (!lines(h, 'stdout').includes('up')) await new Promise((r) => setTimeout(r, 20));
    h.run.stop('cancelled');
    h.run.stop('timed_out'); // idempotent: the first reason stays
    const out = await done;
    expect(out.status).toBe('cancelled');
    expect(out.finishedAt - out.startedAt).toBeLessThan(15000);
  });

  it('the timeout ends the target timed_out', async () => {
    const h = harness('sleep 30', { timeoutSeconds: 1 });
    const out = await h.run.run();
    expect(out.status).toBe('timed_out');
    expect(out.finishedAt - out.startedAt).toBeLessThan(15000);
  });

  it('an unreachable host fails with connect_failed and never reaches running', async () => {
    const h = harness('exit 0', { endpoint: endpoint({ port: await freePort() }) });
    const out = await h.run.run();
    expect(out.status).toBe('failed');
    expect(out.error?.code).toBe('connect_failed');
    expect(h.statuses).toEqual(['connecting']);
    expect(out.phases.runMs).toBeNull();
  });

  it('a runner that vanished is redeployed once and the script still runs', async () => {
    const baseDir = path.join(dir, 'vanishing');
    const h = harness('echo ran', { baseDir });
    h.cache.trusted = true;
    h.cache.deployed = true; // the cache believes it is there; it never was
    const out = await h.run.run();
    expect(out.status).toBe('succeeded');
    expect(h.cache.invalidated).toBe(1);
    expect(h.cache.ensureCalls).toBe(2);
    expect(lines(h, 'system')).toContain(
      'runner missing on the server; redeploying and retrying once',
    );
    expect(lines(h, 'stdout')).toEqual(['ran']);
  });

  it('a dropped connection is a pause: it re-attaches and ends with the real exit code, every line once', async () => {
    const h = harness('for i in 1 2 3 4 5 6 7 8; do echo "n $i"; sleep 0.2; done; exit 6');
    h.cache.trusted = true;
    h.cache.deployed = true;
    const done = h.run.run();
    while (!lines(h, 'stdout').includes('n 2')) await new Promise((r) => setTimeout(r, 20));
    await sshd.killConnections();
    const out = await done;
    expect(out).toMatchObject({ status: 'failed', exitCode: 6, error: null });
    expect(lines(h, 'stdout')).toEqual(['n 1', 'n 2', 'n 3', 'n 4', 'n 5', 'n 6', 'n 7', 'n 8']);
    expect(
      lines(h, 'system').some((l) => /^connection lost; re-attached after \d+ ms$/.test(l)),
    ).toBe(true);
  });

  it('bundled mode with keep collects the run directory once and applies it', async () => {
    const h = harness('echo done');
    h.helpers.keep = true;
    const out = await h.run.run();
    expect(out).toMatchObject({ status: 'succeeded', output: 'collected', condition: true });
    expect(h.helpers.collected).toHaveLength(1);
    expect(h.helpers.collected[0].toString('utf8')).toMatch(/^CRONIUM2 collect \d+\n/);
  });

  it('bundled results that cannot be applied fail the target loudly, keeping the exit code', async () => {
    const h = harness('echo done');
    h.helpers.keep = true;
    h.helpers.applyBundled = async () => {
      throw new Error('a record nested too deep');
    };
    const out = await h.run.run();
    expect(out).toMatchObject({ status: 'failed', exitCode: 0, output: null });
    expect(out.error).toEqual({
      code: 'runner_error',
      message: expect.stringMatching(/results could not be collected: a record nested too deep$/),
    });
    expect(lines(h, 'system').some((l) => /results could not be collected/.test(l))).toBe(true);
  });
});
