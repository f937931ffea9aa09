/**
 * One conversation with the real runner over a real sshd: the ready line, streams,
 * exit codes, control words, a vanished runner, a failing runner and a dropped connection.
 */
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { sh, SshdInstance, startSshd, stopAll } from '../../test/support/sshd';
import { AppConfig } from '../config/app-config';
import { loadConfig } from '../config/load-config';
import { MetricsService } from '../metrics/metrics.service';
import { buildRunnerArtifact } from '../runner-cache/runner-artifact';
import { execCommand } from '../ssh/run-command';
import { SshPool } from '../ssh/ssh-pool.service';
import type { PooledConnection, SshLease } from '../ssh/ssh.types';
import { deployCommand, runCommand } from './commands';
import { OutputCapture } from './output-capture';
import type { ReadyLine, RunPayloadInput } from './protocol';
import { RunnerChannels } from './runner-channels';
import { RunnerExit, RunnerSession } from './runner-session';

jest.setTimeout(60000);

const TEST_YAML = path.resolve(__dirname, '../../config/test.yaml');
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
  config = loadConfig({
    NODE_ENV: 'test',
    CRONIUM_CONFIG: TEST_YAML,
    CRONIUM_DATA_DIR: path.join(dir, 'data'),
  });
  pool = new SshPool(config, new MetricsService());
  lease = await pool.acquire(endpoint());
  const r = await execCommand(lease.connection, deployCommand(base, artifact.hash), {
    stdin: artifact.tar,
  });
  expect(r.stdout).toContain('CRONIUM1 deployed');
});

afterAll(async () => {
  lease?.release();
  await pool?.onApplicationShutdown();
  await sshd?.stop();
  await stopAll();
  fs.rmSync(dir, { recursive: true, force: true });
});

function endpoint() {
  return {
    serverId: 'srv-session',
    serverName: 'session',
    host: sshd.host,
    port: sshd.port,
    username: sshd.username,
    privateKey: sshd.key.privateKey,
    hostKeyFingerprint: sshd.hostKeyFingerprint,
    hostKeyType: null,
  };
}

interface Transcript {
  session: RunnerSession;
  stdout: string[];
  stderr: string[];
  ready: ReadyLine[];
}

function session(
  conn: PooledConnection = lease.connection,
  command = runCommand(base, artifact.hash),
): Transcript {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const ready: ReadyLine[] = [];
  const limits = { capBytes: 1 << 20, maxLineBytes: 4096 };
  const s = new RunnerSession(conn, new RunnerChannels(false, config.ssh.channelOpenRetry), {
    command,
    killGraceSeconds: 1,
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
  });
  return { session: s, stdout, stderr, ready };
}

function request(script: string, over: Partial<RunPayloadInput> = {}): RunPayloadInput {
  return {
    runId: `run-${process.pid}-${++runId}`,
    scriptType: 'bash',
    graceSeconds: 1,
    env: { GREETING: "it's me" },
    script,
    ...over,
  };
}

/** Pids whose command line has `marker` (the [x]yz pattern keeps pgrep's own shell out). */
const processesOf = async (marker: string) =>
  (await sh(`pgrep -f '[${marker[0]}]${marker.slice(1)}' || true`)).stdout.trim();

describe('RunnerSession', () => {
  it('strips the ready line, streams stdout and stderr apart and reports the exit code', async () => {
    const t = session();
    const exit = await t.session.run(
      request('echo "$GREETING"; echo oops >&2; printf "no newline"; exit 3'),
    );
    expect(exit).toMatchObject<Partial<RunnerExit>>({
      started: true,
      exitCode: 3,
      signal: null,
      lost: false,
      runnerMissing: false,
      runnerError: null,
    });
    expect(t.ready).toEqual([{ version: artifact.version, platform: expect.any(String) }]);
    expect(t.stdout).toEqual(["it's me", 'no newline']);
    expect(t.stderr).toEqual(['oops']);
    expect(exit.durationMs).toBeGreaterThanOrEqual(0);
    // the run dir is removed when no `keep` section was sent
    expect(fs.readdirSync(path.join(base, 'runs'))).toEqual([]);
  });

  it('passes what the login shell printed before the ready line to stderr', async () => {
    const t = session(lease.connection, `echo early-noise >&2; ${runCommand(base, artifact.hash)}`);
    const exit = await t.session.run(request('echo fine'));
    expect(exit.started).toBe(true);
    expect(exit.exitCode).toBe(0);
    expect(t.stderr).toEqual(['early-noise']);
    expect(t.stdout).toEqual(['fine']);
  });

  it('a control word sent before the channel opens is delivered after the payload', async () => {
    const marker = `cronium-session-cancel-${process.pid}`;
    const t = session();
    t.session.signal('cancel');
    t.session.signal('timeout'); // only the first word counts
    const started = Date.now();
    const exit = await t.session.run(request(`exec -a ${marker} sleep 30`));
    expect(Date.now() - started).toBeLessThan(15000);
    expect(exit.started).toBe(true);
    expect(exit.exitCode).not.toBe(0);
    expect(await processesOf(marker)).toBe('');
  });

  it('a control word while the script runs kills its whole process tree', async () => {
    const marker = `cronium-session-tree-${process.pid}`;
    const t = session();
    const done = t.session.run(
      request(`(exec -a ${marker} sleep 30) & (exec -a ${marker} sleep 31) & echo up; wait`),
    );
    while (!t.stdout.includes('up')) await new Promise((r) => setTimeout(r, 20));
    expect(await processesOf(marker)).not.toBe('');
    t.session.signal('timeout');
    const exit = await done;
    expect(exit.started).toBe(true);
    expect(exit.exitCode).not.toBe(0);
    expect(await processesOf(marker)).toBe('');
  });

  it('tells a vanished runner from a failing one', async () => {
    const missing = session(lease.connection, runCommand(path.join(dir, 'nowhere'), artifact.hash));
    const gone = await missing.session.run(request('echo never'));
    expect(gone).toMatchObject({ started: false, runnerMissing: true, runnerError: null });
    expect(missing.stdout).toEqual([]);

    // A run id the runner refuses: it answers with a `CRONIUM1 error` line.
    const failing = session();
    const bad = await failing.session.run(request('echo never', { runId: 'bad/id' }));
    expect(bad.started).toBe(false);
    expect(bad.runnerMissing).toBe(false);
    expect(bad.runnerError).toMatch(/\S/);
    expect(failing.stdout).toEqual([]);
  });

  it('reports a dropped connection as lost, and the runner kills the script', async () => {
    const marker = `cronium-session-lost-${process.pid}`;
    const own = await pool.acquire({
      ...endpoint(),
      serverId: 'srv-lost',
      privateKey: (await sshd.addClientKey('ed25519')).privateKey,
    });
    try {
      const t = session(own.connection);
      const done = t.session.run(request(`echo up; exec -a ${marker} sleep 30`));
      while (!t.stdout.includes('up')) await new Promise((r) => setTimeout(r, 20));
      await sshd.killConnections();
      const exit = await done;
      expect(exit.lost).toBe(true);
      expect(exit.exitCode).toBeNull();
      // the runner sees EOF on its control stream and kills the tree
      for (let i = 0; i < 100 && (await processesOf(marker)) !== ''; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await processesOf(marker)).toBe('');
    } finally {
      own.release();
    }
  });
});
