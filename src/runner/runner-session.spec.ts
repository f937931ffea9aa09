/**
 * One conversation with the real runner over a real sshd: the ready line, streams,
 * exit codes, control words, a vanished runner, a failing runner and a dropped connection.
 */
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { endpointOf, sh, SshdInstance, startSshd, stopAll } from '../../test/support/sshd';
import { testConfig } from '../../test/support/config';
import { AppConfig } from '../config/app-config';
import { MetricsService } from '../metrics/metrics.service';
import { buildRunnerArtifact } from '../runner-cache/runner-artifact';
import { execCommand } from '../ssh/run-command';
import { SshPool } from '../ssh/ssh-pool.service';
import type { PooledConnection, SshLease } from '../ssh/ssh.types';
import { attachCommand, deployCommand, runCommand } from './commands';
import { OutputCapture } from './output-capture';
import type { ReadyLine, RunPayloadInput } from './protocol';
import { RunnerChannels } from './runner-channels';
import { RunnerExit, RunnerSession } from './runner-session';

jest.setTimeout(60000);

const artifact = buildRunnerArtifact();

let sshd: SshdInstance;
let dir: string;
let base: string;
let config: AppConfig;
let pool: SshPool;
let lease: SshLease;
let runId = 0;

beforeAll(async () => {
  Logger.overrideLogger(['error']);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-session-'));
  base = path.join(dir, 'base');
  sshd = await startSshd();
  config = testConfig(path.join(dir, 'data'));
  pool = new SshPool(config, new MetricsService());
  lease = await pool.acquire(endpoint());
  const r = await execCommand(lease.connection, deployCommand(base, artifact.hash), {
    stdin: artifact.tar,
  });
  expect(r.stdout).toContain('CRONIUM2 deployed');
});

afterAll(async () => {
  lease?.release();
  await pool?.onApplicationShutdown();
  await sshd?.stop();
  await stopAll();
  fs.rmSync(dir, { recursive: true, force: true });
});

const endpoint = () => endpointOf(sshd, { serverId: 'srv-session', serverName: 'session' });

interface Transcript {
  session: RunnerSession;
  stdout: string[];
  stderr: string[];
  ready: ReadyLine[];
  noise: string[];
}

function session(conn: PooledConnection = lease.connection): Transcript {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const ready: ReadyLine[] = [];
  const noise: string[] = [];
  const limits = { capBytes: 1 << 20, maxLineBytes: 4096 };
  const s = new RunnerSession(conn, new RunnerChannels(false, config.ssh.channelOpenRetry), {
    killGraceSeconds: 1,
    heartbeatMs: 500,
    stdout: new OutputCapture(
      limits,
      (l) => stdout.push(l),
      () => undefined,
    ),
    stderr: new OutputCapture(
      limits,
      (l) => stderr.push(l),
      () => undefined,
    ),
    onReady: (r) => ready.push(r),
    onNoise: (text) => noise.push(text),
  });
  return { session: s, stdout, stderr, ready, noise };
}

function request(script: string, over: Partial<RunPayloadInput> = {}): RunPayloadInput {
  return {
    runId: `run-${process.pid}-${++runId}`,
    scriptType: 'bash',
    graceSeconds: 1,
    timeoutSeconds: 60,
    leaseSeconds: 30,
    env: { GREETING: "it's me" },
    script,
    ...over,
  };
}

/** Pids whose command line has `marker` (the [x]yz pattern keeps pgrep's own shell out). */
const processesOf = async (marker: string) =>
  (await sh(`pgrep -f '[${marker[0]}]${marker.slice(1)}' || true`)).stdout.trim();

const run = (t: Transcript, script: string, over: Partial<RunPayloadInput> = {}) =>
  t.session.start(runCommand(base, artifact.hash), request(script, over));

const until = async (what: () => boolean | Promise<boolean>, ms = 15000) => {
  const end = Date.now() + ms;
  while (!(await what())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
};

const runDir = (id: string) => path.join(base, 'runs', id);

describe('RunnerSession', () => {
  it('strips the ready line and the trailer, streams stdout and stderr apart, reports the exit code', async () => {
    const t = session();
    const req = request('echo "$GREETING"; echo oops >&2; printf "no newline"; exit 3');
    const exit = await t.session.start(runCommand(base, artifact.hash), req);
    expect(exit).toMatchObject<Partial<RunnerExit>>({
      started: true,
      ended: true,
      exitCode: 3,
      reason: 'exit',
      signal: null,
      lost: false,
      runnerMissing: false,
      unknownRun: false,
      runnerError: null,
    });
    expect(t.ready).toEqual([
      { kind: 'ready', version: artifact.version, platform: expect.any(String) },
    ]);
    expect(t.stdout).toEqual(["it's me", 'no newline']);
    expect(t.stderr).toEqual(['oops']);
    // the ack removes the run dir once the trailer is in
    await until(() => !fs.existsSync(runDir(req.runId)));
  });

  it('adds no line of its own: output ending in a newline, empty lines, a fake trailer', async () => {
    const t = session();
    const exit = await run(t, 'printf "a\\n\\nCRONIUM2 exit 0 exit\\nb\\n\\n"; exit 4');
    expect(exit).toMatchObject({ ended: true, exitCode: 4, reason: 'exit' });
    expect(t.stdout).toEqual(['a', '', 'CRONIUM2 exit 0 exit', 'b', '']);
  });

  it('passes what the login shell printed before the ready line to onNoise, not stderr', async () => {
    const t = session();
    const exit = await t.session.start(
      `echo early-noise >&2; ${runCommand(base, artifact.hash)}`,
      request('echo fine'),
    );
    expect(exit).toMatchObject({ ended: true, exitCode: 0 });
    expect(t.noise).toEqual(['early-noise']);
    expect(t.stderr).toEqual([]);
    expect(t.stdout).toEqual(['fine']);
  });

  it('a control word sent before the channel opens is delivered after the payload', async () => {
    const marker = `cronium-session-cancel-${process.pid}`;
    const t = session();
    t.session.signal('cancel');
    t.session.signal('timeout'); // only the first word counts
    const started = Date.now();
    const exit = await run(t, `exec -a ${marker} sleep 30`);
    expect(Date.now() - started).toBeLessThan(15000);
    expect(exit).toMatchObject({ ended: true, reason: 'cancel' });
    expect(exit.exitCode).not.toBe(0);
    expect(await processesOf(marker)).toBe('');
  });

  it('a timeout word while the script runs kills its whole process tree', async () => {
    const marker = `cronium-session-tree-${process.pid}`;
    const t = session();
    const done = run(
      t,
      `(exec -a ${marker} sleep 30) & (exec -a ${marker} sleep 31) & echo up; wait`,
    );
    await until(() => t.stdout.includes('up'));
    expect(await processesOf(marker)).not.toBe('');
    t.session.signal('timeout');
    const exit = await done;
    expect(exit).toMatchObject({ ended: true, reason: 'timeout' });
    expect(await processesOf(marker)).toBe('');
  });

  it('tells a vanished runner, an unknown run and a failing runner apart', async () => {
    const missing = session();
    const gone = await missing.session.start(
      runCommand(path.join(dir, 'nowhere'), artifact.hash),
      request('echo never'),
    );
    expect(gone).toMatchObject({ started: false, runnerMissing: true, runnerError: null });

    const stranger = session();
    const unknown = await stranger.session.attach(
      attachCommand(base, artifact.hash, `no-such-run-${process.pid}`, 0, 0),
    );
    expect(unknown).toMatchObject({ started: false, unknownRun: true, lost: false });

    // A run id the runner refuses: it answers with a `CRONIUM2 error` line.
    const failing = session();
    const bad = await run(failing, 'echo never', { runId: 'bad/id' });
    expect(bad).toMatchObject({ started: false, runnerMissing: false, unknownRun: false });
    expect(bad.runnerError).toMatch(/\S/);
    expect(failing.stdout).toEqual([]);
  });

  it('after a dropped connection the script goes on; attach resumes with no gap and no duplicate', async () => {
    const key = await sshd.addClientKey('ed25519');
    const own = await pool.acquire({
      ...endpoint(),
      serverId: 'srv-lost',
      privateKey: key.privateKey,
    });
    const lines: string[] = [];
    const limits = { capBytes: 1 << 20, maxLineBytes: 4096 };
    const out = new OutputCapture(
      limits,
      (l) => lines.push(l),
      () => undefined,
    );
    const err = new OutputCapture(
      limits,
      () => undefined,
      () => undefined,
    );
    const opts = {
      killGraceSeconds: 1,
      heartbeatMs: 200,
      stdout: out,
      stderr: err,
      onReady: () => undefined,
      onNoise: () => undefined,
    };
    const channels = new RunnerChannels(false, config.ssh.channelOpenRetry);
    const req = request(
      'i=0; while [ $i -lt 40 ]; do echo "line $i"; i=$((i+1)); sleep 0.05; done; printf partial; sleep 0.05; echo " end"; exit 5',
    );
    const first = new RunnerSession(own.connection, channels, opts);
    const done = first.start(runCommand(base, artifact.hash), req);
    await until(() => lines.length >= 5);
    await sshd.killConnections();
    const lost = await done;
    own.release();
    expect(lost).toMatchObject({ started: true, ended: false, lost: true });
    expect(fs.existsSync(runDir(req.runId))).toBe(true); // the script runs on

    const again = await pool.acquire({
      ...endpoint(),
      serverId: 'srv-lost',
      privateKey: key.privateKey,
    });
    try {
      const second = new RunnerSession(again.connection, channels, opts);
      const exit = await second.attach(
        attachCommand(base, artifact.hash, req.runId, out.position, err.position),
      );
      out.flush();
      expect(exit).toMatchObject({ started: true, ended: true, exitCode: 5, reason: 'exit' });
      expect(lines).toEqual([...Array.from({ length: 40 }, (_, i) => `line ${i}`), 'partial end']);
    } finally {
      again.release();
    }
  });
});
