import { Logger } from '@nestjs/common';
import { DataSource } from 'typeorm';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startSshd, SshdInstance, stopAll } from '../../test/support/sshd';
import { AppConfig } from '../config/app-config';
import { loadConfig } from '../config/load-config';
import { MetricsService } from '../metrics/metrics.service';
import { dataSourceOptions } from '../persistence/data-source-options';
import { ServersRepository } from '../persistence/servers.repository';
import { SshPool } from '../ssh/ssh-pool.service';
import { ServerCheckService } from './server-check.service';
import { ServersService } from './servers.service';

/** ServerCheckService against a real OpenSSH sshd, through the real pool. */
describe('ServerCheckService (real sshd)', () => {
  jest.setTimeout(30000);
  let dir: string;
  let sshd: SshdInstance;
  let ds: DataSource;
  let config: AppConfig;
  let servers: ServersService;
  let pool: SshPool;
  let checker: ServerCheckService;

  beforeAll(async () => {
    Logger.overrideLogger(['error']);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-check-'));
    sshd = await startSshd();
    config = loadConfig({
      NODE_ENV: 'test',
      CRONIUM_DATA_DIR: dir,
      CRONIUM_SECRETS_KEY: 's'.repeat(40),
      CRONIUM_JWT_SECRET: 'j'.repeat(48),
      CRONIUM_SERVICE_TOKENS: 'token-aaaaaaaaaaaaaaaa',
      DATABASE_URL: 'sqlite::memory:',
      CRONIUM__SSH__CONNECT_RETRY: '{"attempts":1,"initialDelayMs":0,"factor":1,"maxDelayMs":0}',
    });
    ds = new DataSource(dataSourceOptions('sqlite::memory:'));
    await ds.initialize();
    servers = new ServersService(new ServersRepository(ds), config);
    pool = new SshPool(config, new MetricsService());
    pool.setHostKeyLearner((id, seen) => servers.learnHostKey(id, seen));
    servers.changes$.subscribe((id) => pool.evictServer(id));
    checker = new ServerCheckService(servers, pool, config);
  });

  afterAll(async () => {
    await pool?.onApplicationShutdown();
    await ds?.destroy();
    await stopAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const register = (name: string, over: Record<string, unknown> = {}) =>
    servers.create({
      name,
      host: sshd.host,
      port: sshd.port,
      username: sshd.username,
      privateKey: sshd.key.privateKey,
      ...over,
    } as any);

  it('connects, pins the host key on first use and reports timings', async () => {
    const s = await register('tofu');
    const res = await checker.check(s.id);
    expect(res).toEqual({
      ok: true,
      fingerprint: sshd.hostKeyFingerprint,
      hostKeyType: 'ssh-ed25519',
      pinned: true,
      connectMs: expect.any(Number),
      latencyMs: expect.any(Number),
    });
    expect(res.latencyMs!).toBeGreaterThan(0);
    expect((await servers.get(s.id)).hostKeyFingerprint).toBe(sshd.hostKeyFingerprint);
    // warm: reuses the pooled connection
    expect((await checker.check(s.id)).ok).toBe(true);
  });

  it('accepts a matching given host key and refuses a different one', async () => {
    const good = await register('given', { hostKey: sshd.hostPublicKey });
    expect(await checker.check(good.id)).toMatchObject({ ok: true, pinned: true });

    const other = await register('wrong', {
      hostKey: 'SHA256:' + 'A'.repeat(43),
      port: sshd.port,
    });
    const res = await checker.check(other.id);
    expect(res).toEqual({
      ok: false,
      error: { code: 'host_key_mismatch', message: expect.any(String) },
    });
  });

  it('reports refused credentials as auth_failed', async () => {
    const s = await register('badpw', { privateKey: undefined, password: 'definitely-wrong' });
    const res = await checker.check(s.id);
    expect(res.ok).toBe(false);
    expect(res.error?.code).toBe('auth_failed');
  });

  it('reports an unreachable port as connect_failed', async () => {
    const s = await register('closed', { port: 1 });
    const res = await checker.check(s.id);
    expect(res.ok).toBe(false);
    expect(res.error?.code).toBe('connect_failed');
  });
});
