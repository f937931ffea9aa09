import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { createHash, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataSource, Repository } from 'typeorm';
import {
  endpointOf,
  ensureTestUser,
  sh,
  SshdInstance,
  startSshd,
  stopAll,
  TEST_USER,
} from '../../test/support/sshd';
import { AppConfig } from '../config/app-config';
import { loadConfig } from '../config/load-config';
import { TargetError } from '../executions/error-codes';
import { MetricsService } from '../metrics/metrics.service';
import { dataSourceOptions } from '../persistence/data-source-options';
import { RunnerCacheEntity } from '../persistence/entities';
import { RunnerCacheRepository } from '../persistence/runner-cache.repository';
import { SshPool } from '../ssh/ssh-pool.service';
import { PooledConnection, SshEndpoint, SshLease } from '../ssh/ssh.types';
import { buildRunnerArtifact, REMOTE_DIR } from './runner-artifact';
import { RunnerCacheService } from './runner-cache.service';

const TEST_YAML = path.resolve(__dirname, '../../config/test.yaml');

/** A real pooled connection whose exec calls are recorded (to tell remote work from none). */
function recording(conn: PooledConnection): { conn: PooledConnection; commands: string[] } {
  const commands: string[] = [];
  const wrapped: PooledConnection = {
    get id() {
      return conn.id;
    },
    get hostKey() {
      return conn.hostKey;
    },
    get connectMs() {
      return conn.connectMs;
    },
    get closed() {
      return conn.closed;
    },
    exec(command, wire) {
      commands.push(command);
      return conn.exec(command, wire);
    },
    onClose: (listener) => conn.onClose(listener),
    forwardIn: (address, port) => conn.forwardIn(address, port),
    unforwardIn: (address, port) => conn.unforwardIn(address, port),
    forwardInSocket: (path) => conn.forwardInSocket(path),
    unforwardInSocket: (path) => conn.unforwardInSocket(path),
    onForwardedConnection: (handler) => conn.onForwardedConnection(handler),
    destroy: (reason) => conn.destroy(reason),
  };
  return { conn: wrapped, commands };
}

const isDeploy = (cmd: string) => cmd.includes('mktemp -d');
const isVerify = (cmd: string) => !isDeploy(cmd) && cmd.includes('sha256sum -c --quiet SHA256SUMS');

async function counterValue(metrics: MetricsService, result: string): Promise<number> {
  const m = await metrics.runnerDeployments.get();
  return m.values.find((v) => v.labels.result === result)?.value ?? 0;
}

const deployTemps = (runnersDir: string) =>
  fs.existsSync(runnersDir) && fs.statSync(runnersDir).isDirectory()
    ? fs.readdirSync(runnersDir).filter((n) => n.startsWith('.deploy-'))
    : [];

describe('RunnerCacheService (real sshd, real sqlite)', () => {
  jest.setTimeout(60_000);
  let dir: string;
  let sshd: SshdInstance;
  let ds: DataSource;
  let repo: Repository<RunnerCacheEntity>;
  let pool: SshPool;
  let lease: SshLease;
  let metrics: MetricsService;
  let hash: string;

  beforeAll(async () => {
    Logger.overrideLogger(['error']);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-runner-cache-'));
    fs.chmodSync(dir, 0o711);
    sshd = await startSshd();
    ds = new DataSource(dataSourceOptions('sqlite::memory:'));
    await ds.initialize();
    repo = ds.getRepository(RunnerCacheEntity);
    metrics = new MetricsService();
    pool = new SshPool(makeConfig(), metrics);
    lease = await pool.acquire(endpoint());
    hash = buildRunnerArtifact().hash;
  });

  afterAll(async () => {
    lease?.release();
    await pool?.onApplicationShutdown();
    await ds?.destroy();
    await sshd?.stop();
    await stopAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function makeConfig(): AppConfig {
    const config = loadConfig({
      NODE_ENV: 'test',
      CRONIUM_CONFIG: TEST_YAML,
      CRONIUM_DATA_DIR: path.join(dir, 'data'),
    });
    config.runner.deployRetry = { attempts: 3, initialDelayMs: 20, factor: 2, maxDelayMs: 100 };
    return config;
  }

  function endpoint(over: Partial<SshEndpoint> = {}): SshEndpoint {
    return endpointOf(sshd, { serverId: randomUUID(), serverName: 'runner-cache-test', ...over });
  }

  function service(config = makeConfig()) {
    return { svc: new RunnerCacheService(config, metrics, new RunnerCacheRepository(ds)), config };
  }

  let baseSeq = 0;
  const freshBase = () => path.join(dir, `base-${++baseSeq}`);

  it('deploys on first use, then hits without remote work', async () => {
    const { svc } = service();
    expect(svc.artifact.hash).toBe(hash);
    const { conn, commands } = recording(lease.connection);
    const serverId = randomUUID();
    const base = freshBase();
    const before = await counterValue(metrics, 'success');

    expect(await svc.ensure(conn, serverId, base)).toEqual({ outcome: 'deployed' });
    expect(commands.filter(isDeploy)).toHaveLength(1);
    expect(await counterValue(metrics, 'success')).toBe(before + 1);

    const runnerDir = path.join(base, 'runners', hash);
    expect(fs.statSync(path.join(runnerDir, 'runner.sh')).isFile()).toBe(true);
    expect(fs.statSync(base).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(base, 'runners')).mode & 0o777).toBe(0o700);
    expect(deployTemps(path.join(base, 'runners'))).toEqual([]);
    expect(fs.readdirSync(path.join(base, 'runners'))).toEqual([hash]);
    // the deployed files verify in place
    const check = await sh(`cd '${runnerDir}' && sha256sum -c --quiet SHA256SUMS`);
    expect(check.code).toBe(0);
    expect(fs.readFileSync(path.join(runnerDir, 'VERSION'), 'utf8').trim()).toBe(
      svc.artifact.version,
    );

    const row = await repo.findOneByOrFail({ serverId, runnerHash: hash });
    expect(row.baseDir).toBe(base);
    expect(row.deployedAt).toBeGreaterThan(Date.now() - 60_000);

    const n = commands.length;
    expect(await svc.ensure(conn, serverId, base)).toEqual({ outcome: 'hit' });
    expect(await svc.ensure(conn, serverId, base)).toEqual({ outcome: 'hit' });
    expect(commands.length).toBe(n);
    expect(await counterValue(metrics, 'success')).toBe(before + 1);
  });

  it('re-verifies by hash once the trust period is over', async () => {
    const { svc, config } = service();
    const { conn, commands } = recording(lease.connection);
    const serverId = randomUUID();
    const base = freshBase();
    expect((await svc.ensure(conn, serverId, base)).outcome).toBe('deployed');
    const deployedAt = (await repo.findOneByOrFail({ serverId })).deployedAt;
    const firstVerified = (await repo.findOneByOrFail({ serverId })).verifiedAt;

    config.runner.trustSeconds = 0;
    commands.length = 0;
    await new Promise((r) => setTimeout(r, 5));
    expect(await svc.ensure(conn, serverId, base)).toEqual({ outcome: 'verified' });
    expect(commands).toHaveLength(1);
    expect(isVerify(commands[0])).toBe(true);
    const row = await repo.findOneByOrFail({ serverId });
    expect(row.deployedAt).toBe(deployedAt);
    expect(row.verifiedAt).toBeGreaterThan(firstVerified);
  });

  it('redeploys when the remote runner has gone or was tampered with', async () => {
    const { svc, config } = service();
    const { conn, commands } = recording(lease.connection);
    const serverId = randomUUID();
    const base = freshBase();
    const runnerDir = path.join(base, 'runners', hash);
    expect((await svc.ensure(conn, serverId, base)).outcome).toBe('deployed');

    config.runner.trustSeconds = 0;
    fs.rmSync(runnerDir, { recursive: true, force: true });
    commands.length = 0;
    expect(await svc.ensure(conn, serverId, base)).toEqual({ outcome: 'deployed' });
    expect(commands.filter(isVerify)).toHaveLength(1);
    expect(commands.filter(isDeploy)).toHaveLength(1);
    expect(fs.existsSync(path.join(runnerDir, 'runner.sh'))).toBe(true);

    // a modified file fails the hash check: the directory is replaced by a good copy
    fs.appendFileSync(path.join(runnerDir, 'runner.sh'), '\necho tampered\n');
    expect(await svc.ensure(conn, serverId, base)).toEqual({ outcome: 'deployed' });
    expect(fs.readFileSync(path.join(runnerDir, 'runner.sh'), 'utf8')).not.toContain('tampered');
    expect((await sh(`cd '${runnerDir}' && sha256sum -c --quiet SHA256SUMS`)).code).toBe(0);
    expect(deployTemps(path.join(base, 'runners'))).toEqual([]);

    // something that is not a directory in the runner's place is moved aside too
    fs.rmSync(runnerDir, { recursive: true, force: true });
    fs.writeFileSync(runnerDir, 'junk');
    expect(await svc.ensure(conn, serverId, base)).toEqual({ outcome: 'deployed' });
    expect(fs.statSync(runnerDir).isDirectory()).toBe(true);
    expect(deployTemps(path.join(base, 'runners'))).toEqual([]);
  });

  it('concurrent ensure() calls for one server share a single deployment', async () => {
    const { svc } = service();
    const { conn, commands } = recording(lease.connection);
    const serverId = randomUUID();
    const base = freshBase();
    const before = await counterValue(metrics, 'success');

    const results = await Promise.all(
      Array.from({ length: 6 }, () => svc.ensure(conn, serverId, base)),
    );
    expect(commands.filter(isDeploy)).toHaveLength(1);
    expect(await counterValue(metrics, 'success')).toBe(before + 1);
    // every caller waited for that one deployment (or found it done)
    for (const r of results) expect(['deployed', 'hit']).toContain(r.outcome);
    expect(results.filter((r) => r.outcome === 'deployed').length).toBeGreaterThanOrEqual(1);
    expect(await repo.countBy({ serverId })).toBe(1);
    expect(deployTemps(path.join(base, 'runners'))).toEqual([]);
    expect(await svc.ensure(conn, serverId, base)).toEqual({ outcome: 'hit' });
  });

  it('deployments to different servers do not share an attempt', async () => {
    const { svc } = service();
    const { conn, commands } = recording(lease.connection);
    const [a, b] = await Promise.all([
      svc.ensure(conn, randomUUID(), freshBase()),
      svc.ensure(conn, randomUUID(), freshBase()),
    ]);
    expect(a.outcome).toBe('deployed');
    expect(b.outcome).toBe('deployed');
    expect(commands.filter(isDeploy)).toHaveLength(2);
  });

  it('a failed deployment is deploy_failed after the configured attempts and leaves nothing behind', async () => {
    const { svc, config } = service();
    expect(config.runner.deployRetry.attempts).toBe(3);
    const { conn, commands } = recording(lease.connection);
    const serverId = randomUUID();
    const base = freshBase();
    fs.mkdirSync(base, { recursive: true });
    fs.writeFileSync(path.join(base, 'runners'), 'not a directory'); // mkdir -p fails
    const before = await counterValue(metrics, 'failure');

    let err: any;
    try {
      await svc.ensure(conn, serverId, base);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TargetError);
    expect(err.code).toBe('deploy_failed');
    expect(err.message).toMatch(/runner deployment failed: mkdir/);
    expect(commands.filter(isDeploy)).toHaveLength(3);
    expect(await counterValue(metrics, 'failure')).toBe(before + 1);
    expect(await repo.countBy({ serverId })).toBe(0);
    expect(fs.readdirSync(base)).toEqual(['runners']);
    expect(fs.readFileSync(path.join(base, 'runners'), 'utf8')).toBe('not a directory');

    // once the obstacle is gone the next ensure deploys
    fs.rmSync(path.join(base, 'runners'));
    expect(await svc.ensure(conn, serverId, base)).toEqual({ outcome: 'deployed' });
  });

  it('a new service instance sees the persisted entry and hits without deploying', async () => {
    const first = service().svc;
    const serverId = randomUUID();
    const base = freshBase();
    expect((await first.ensure(lease.connection, serverId, base)).outcome).toBe('deployed');

    const second = service().svc;
    const { conn, commands } = recording(lease.connection);
    expect(await second.ensure(conn, serverId, base)).toEqual({ outcome: 'hit' });
    expect(commands).toEqual([]);

    // an entry for another baseDir does not count
    const otherBase = freshBase();
    expect(await second.ensure(conn, serverId, otherBase)).toEqual({ outcome: 'deployed' });
    expect(fs.existsSync(path.join(otherBase, 'runners', hash, 'runner.sh'))).toBe(true);
  });

  it('invalidate() forgets a server so the next ensure redeploys', async () => {
    const { svc } = service();
    const { conn, commands } = recording(lease.connection);
    const serverId = randomUUID();
    const base = freshBase();
    expect((await svc.ensure(conn, serverId, base)).outcome).toBe('deployed');
    await svc.invalidate(serverId);
    expect(await repo.countBy({ serverId })).toBe(0);
    commands.length = 0;
    expect(await svc.ensure(conn, serverId, base)).toEqual({ outcome: 'deployed' });
    expect(commands.filter(isDeploy)).toHaveLength(1);
  });

  describe('as an unprivileged user', () => {
    let userLease: SshLease;
    let home: string;

    beforeAll(async () => {
      const user = await ensureTestUser();
      userLease = await pool.acquire(
        endpoint({ username: user.username, privateKey: undefined, password: user.password }),
      );
      home = (await sh(`getent passwd ${TEST_USER} | cut -d: -f6`)).stdout.trim();
      expect(home).toMatch(/^\//);
    });

    afterAll(() => userLease?.release());

    it('a ~ baseDir expands to the remote home directory', async () => {
      const { svc } = service();
      const rel = `.cache/cronium-spec-${process.pid}-${Date.now()}`;
      try {
        expect((await svc.ensure(userLease.connection, randomUUID(), `~/${rel}`)).outcome).toBe(
          'deployed',
        );
        const base = path.join(home, rel);
        expect(fs.existsSync(path.join(base, 'runners', hash, 'runner.sh'))).toBe(true);
        expect(fs.statSync(base).mode & 0o777).toBe(0o700);
        expect(fs.statSync(base).uid).toBe(fs.statSync(home).uid);
      } finally {
        fs.rmSync(path.join(home, rel), { recursive: true, force: true });
      }
    });

    it('a deployment failing after its temp dir was made cleans the temp dir up', async () => {
      const { svc } = service();
      const serverId = randomUUID();
      const base = freshBase();
      const runners = path.join(base, 'runners');
      fs.mkdirSync(path.join(runners, hash), { recursive: true });
      // A stale runner dir the user may not move: renaming a directory to another parent
      // needs write access to the directory itself, and this one is the user's but 0500.
      fs.writeFileSync(path.join(runners, hash, 'SHA256SUMS'), `${'0'.repeat(64)}  runner.sh\n`);
      await sh(`chown ${TEST_USER} '${base}' '${runners}' '${runners}/${hash}'`);
      fs.chmodSync(path.join(runners, hash), 0o500);
      const { conn, commands } = recording(userLease.connection);

      let err: any;
      try {
        await svc.ensure(conn, serverId, base);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(TargetError);
      expect(err.code).toBe('deploy_failed');
      // it got as far as moving the stale dir into its temp dir
      expect(err.message).toMatch(/mv: cannot move .*\/runners\/\.deploy-[^/]+\/old/);
      expect(commands.filter(isDeploy)).toHaveLength(3);
      expect(deployTemps(runners)).toEqual([]);
      expect(fs.readdirSync(runners)).toEqual([hash]);
    });
  });
});

describe('buildRunnerArtifact', () => {
  let tmp: string;

  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-artifact-'));
  });

  afterEach(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** A private snapshot of remote/ so concurrent edits to the real sources cannot interfere. */
  const snapshot = () => {
    const src = path.join(tmp, 'remote');
    fs.cpSync(REMOTE_DIR, src, { recursive: true });
    return src;
  };

  it('is deterministic: same sources, same bytes and hash', () => {
    const src = snapshot();
    const a = buildRunnerArtifact(src);
    const b = buildRunnerArtifact(src);
    expect(a.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(b.hash).toBe(a.hash);
    expect(b.tar.equals(a.tar)).toBe(true);
    expect(a.hash).toBe(createHash('sha256').update(a.tar).digest('hex'));
    expect(a.version).toBe(fs.readFileSync(path.join(src, 'VERSION'), 'utf8').trim());
    expect(a.files).toEqual(expect.arrayContaining(['runner.sh', 'VERSION', 'SHA256SUMS']));

    // file mtimes do not matter
    const t = new Date('2001-02-03T04:05:06Z');
    fs.utimesSync(path.join(src, 'runner.sh'), t, t);
    expect(buildRunnerArtifact(src).hash).toBe(a.hash);
  });

  it('changes hash when any file changes', () => {
    const src = snapshot();
    const a = buildRunnerArtifact(src);
    fs.appendFileSync(path.join(src, 'VERSION'), ' ');
    expect(buildRunnerArtifact(src).hash).not.toBe(a.hash);
  });

  it('extracts with the system tar and verifies with sha256sum -c', async () => {
    const art = buildRunnerArtifact();
    const tarFile = path.join(tmp, 'a.tar');
    const out = path.join(tmp, 'out');
    fs.mkdirSync(out);
    fs.writeFileSync(tarFile, art.tar);
    const x = await sh(`tar -xf '${tarFile}' -C '${out}'`);
    expect(x.stderr).toBe('');
    expect(x.code).toBe(0);
    const check = await sh(`cd '${out}' && sha256sum -c SHA256SUMS`);
    expect(check.code).toBe(0);
    for (const f of art.files.filter((f) => f !== 'SHA256SUMS')) {
      expect(check.stdout).toContain(`${f}: OK`);
      expect(
        fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(REMOTE_DIR, f))),
      ).toBe(true);
    }
    expect(fs.statSync(path.join(out, 'runner.sh')).mode & 0o777).toBe(0o755);
    expect(fs.statSync(path.join(out, 'VERSION')).mode & 0o777).toBe(0o644);
    const list = await sh(`tar -tf '${tarFile}'`);
    expect(list.code).toBe(0);
    expect(list.stdout.split('\n').filter(Boolean).sort()).toEqual(
      [
        ...art.files,
        ...new Set(art.files.filter((f) => f.includes('/')).map((f) => f.split('/')[0] + '/')),
      ].sort(),
    );
  });

  it('refuses a source dir without runner.sh', () => {
    fs.writeFileSync(path.join(tmp, 'VERSION'), '1\n');
    expect(() => buildRunnerArtifact(tmp)).toThrow(/runner\.sh missing/);
  });
});
