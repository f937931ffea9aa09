import { HTTP_LOGGER, httpLogger } from '../logging/logging.module';
import { Global, INestApplication, Logger, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { EventEmitter } from 'node:events';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import request from 'supertest';
import { configureApp } from '../app-setup';
import { TargetError } from '../executions/error-codes';
import { metricProviders } from '../metrics/metric-definitions';
import { MetricsService } from '../metrics/metrics.service';
import { AppConfig } from '../config/app-config';
import { loadConfig } from '../config/load-config';
import { SshPool } from '../ssh/ssh-pool.service';
import { SeenHostKey, SshEndpoint } from '../ssh/ssh.types';
import { ServersModule } from './servers.module';
import { ServersService } from './servers.service';

/** A stand-in for the SSH pool: behaves like a reachable host with a fixed host key. */
class FakePool {
  hostKey: SeenHostKey = { fingerprint: '', type: 'ssh-ed25519' };
  fail: TargetError | null = null;
  exitCode = 0;
  learner: (id: string, seen: SeenHostKey) => Promise<boolean> = async () => false;
  evicted: string[] = [];
  released = 0;
  setHostKeyLearner(l: FakePool['learner']) {
    this.learner = l;
  }
  evictServer(id: string) {
    this.evicted.push(id);
  }
  async acquire(ep: SshEndpoint) {
    if (this.fail) throw this.fail;
    if (ep.hostKeyFingerprint && ep.hostKeyFingerprint !== this.hostKey.fingerprint) {
      throw new TargetError('host_key_mismatch', `host key mismatch for ${ep.serverName}`);
    }
    if (!ep.hostKeyFingerprint && !(await this.learner(ep.serverId, this.hostKey))) {
      throw new TargetError('host_key_mismatch', 'refused');
    }
    const exitCode = this.exitCode;
    return {
      release: () => this.released++,
      connection: {
        hostKey: this.hostKey,
        connectMs: 12,
        onClose: () => () => undefined,
        exec: async (cmd: string, wire?: (ch: any) => void) => {
          expect(cmd).toBe('true');
          const ch: any = new EventEmitter();
          ch.stderr = new EventEmitter();
          ch.stderr.resume = () => undefined;
          ch.resume = () => undefined;
          ch.end = () => undefined;
          ch.close = () => undefined;
          setTimeout(() => {
            ch.emit('exit', exitCode);
            ch.emit('close');
          }, 2);
          wire?.(ch);
          return ch;
        },
      },
    };
  }
}

describe('ServersController (HTTP)', () => {
  let dir: string;
  let app: INestApplication;
  let pool: FakePool;
  let key: string;
  let hostPub: string;
  let hostFp: string;
  let http: () => ReturnType<typeof request>;

  beforeAll(async () => {
    Logger.overrideLogger(['error']);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-ctl-'));
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'k')]);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'h')]);
    key = fs.readFileSync(path.join(dir, 'k'), 'utf8');
    hostPub = fs.readFileSync(path.join(dir, 'h.pub'), 'utf8');
    hostFp = execFileSync('ssh-keygen', ['-lf', path.join(dir, 'h.pub')], {
      encoding: 'utf8',
    }).split(' ')[1];

    const config = loadConfig({
      NODE_ENV: 'test',
      CRONIUM_DATA_DIR: dir,
      CRONIUM_SECRETS_KEY: 'k'.repeat(40),
      CRONIUM_JWT_SECRET: 'j'.repeat(48),
      CRONIUM_SERVICE_TOKENS: 'token-aaaaaaaaaaaaaaaa',
      DATABASE_URL: 'sqlite::memory:',
    });

    @Global()
    @Module({
      providers: [
        { provide: AppConfig, useValue: config },
        ...metricProviders,
        MetricsService,
        // configureApp mounts the app's pino-http middleware first.
        { provide: HTTP_LOGGER, inject: [AppConfig], useFactory: httpLogger },
      ],
      exports: [AppConfig, MetricsService, HTTP_LOGGER],
    })
    class TestInfraModule {}

    pool = new FakePool();
    const moduleRef = await Test.createTestingModule({ imports: [TestInfraModule, ServersModule] })
      .overrideProvider(SshPool)
      .useValue(pool)
      .compile();
    app = moduleRef.createNestApplication({ logger: false });
    configureApp(app);
    await app.init();
    http = () => request(app.getHttpServer());
  });

  afterAll(async () => {
    await app?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    pool.fail = null;
    pool.exitCode = 0;
    pool.hostKey = { fingerprint: hostFp, type: 'ssh-ed25519' };
  });

  const body = (over: Record<string, unknown> = {}) => ({
    name: 'web-1',
    host: '127.0.0.1',
    username: 'deploy',
    privateKey: key,
    ...over,
  });

  it('runs the CRUD cycle with the right status codes and never returns secrets', async () => {
    const created = await http()
      .post('/v1/servers')
      .send(body({ tags: ['a'] }))
      .expect(201);
    const s = created.body;
    expect(s).toMatchObject({ name: 'web-1', port: 22, authType: 'key', tags: ['a'] });
    expect(JSON.stringify(s)).not.toMatch(/privateKey|password|passphrase|credentials|PRIVATE/);

    await http().post('/v1/servers').send(body()).expect(409);
    const list = await http().get('/v1/servers').expect(200);
    expect(list.body.map((x: any) => x.id)).toContain(s.id);
    expect(JSON.stringify(list.body)).not.toMatch(/PRIVATE|credentials/);
    await http().get(`/v1/servers/${s.id}`).expect(200);

    const patched = await http()
      .patch(`/v1/servers/${s.id}`)
      .send({ password: 'pw', tags: ['b'] })
      .expect(200);
    expect(patched.body).toMatchObject({ authType: 'password', tags: ['b'] });
    expect(JSON.stringify(patched.body)).not.toContain('"pw"');
    expect(pool.evicted).toContain(s.id);

    await http().delete(`/v1/servers/${s.id}`).expect(204, '');
    const gone = await http().get(`/v1/servers/${s.id}`).expect(404);
    expect(gone.body).toEqual({
      statusCode: 404,
      error: 'Not Found',
      message: `server ${s.id} not found`,
    });
  });

  it('answers 404, never 500, for malformed ids', async () => {
    for (const id of ['nope', '1%27%20OR%201=1', '00000000-0000-0000-0000-00000000000g']) {
      await http().get(`/v1/servers/${id}`).expect(404);
      await http().patch(`/v1/servers/${id}`).send({ name: 'x' }).expect(404);
      await http().delete(`/v1/servers/${id}`).expect(404);
      await http().post(`/v1/servers/${id}/check`).expect(404);
    }
  });

  it('answers 400 naming the field', async () => {
    const both = await http()
      .post('/v1/servers')
      .send(body({ name: 'x', password: 'pw' }))
      .expect(400);
    expect(both.body.message).toMatch(/privateKey, password/);
    const neither = await http()
      .post('/v1/servers')
      .send(body({ name: 'x', privateKey: undefined }))
      .expect(400);
    expect(neither.body.message).toMatch(/privateKey, password: exactly one/);
    const badKey = await http()
      .post('/v1/servers')
      .send(body({ name: 'x', privateKey: 'garbage-key-material' }))
      .expect(400);
    expect(badKey.body).toEqual({
      statusCode: 400,
      error: 'Bad Request',
      message: 'privateKey: cannot be parsed (wrong passphrase?)',
    });
    const badHostKey = await http()
      .post('/v1/servers')
      .send(body({ name: 'x', hostKey: 'ssh-ed25519 AAAA' }))
      .expect(400);
    expect(badHostKey.body.message).toMatch(/^hostKey/);
    await http()
      .post('/v1/servers')
      .send(body({ name: 'x', extra: 1 }))
      .expect(400);
    await http()
      .post('/v1/servers')
      .send(body({ name: 'x', baseDir: '~/$(id)' }))
      .expect(400);
  });

  it('check: pins on first use and reports timings', async () => {
    const s = (
      await http()
        .post('/v1/servers')
        .send(body({ name: 'chk' }))
        .expect(201)
    ).body;
    const res = await http().post(`/v1/servers/${s.id}/check`).expect(200);
    expect(res.body).toEqual({
      ok: true,
      fingerprint: hostFp,
      hostKeyType: 'ssh-ed25519',
      pinned: true,
      connectMs: 12,
      latencyMs: expect.any(Number),
    });
    expect((await http().get(`/v1/servers/${s.id}`)).body.hostKeyFingerprint).toBe(hostFp);

    // the host now presents another key: refused, and the pin stays
    pool.hostKey = { fingerprint: 'SHA256:' + 'A'.repeat(43), type: 'ssh-ed25519' };
    const bad = await http().post(`/v1/servers/${s.id}/check`).expect(200);
    expect(bad.body).toEqual({
      ok: false,
      error: { code: 'host_key_mismatch', message: expect.any(String) },
    });
    expect((await http().get(`/v1/servers/${s.id}`)).body.hostKeyFingerprint).toBe(hostFp);
  });

  it('check: reports connection errors and a failing `true` as ok:false', async () => {
    const s = (
      await http()
        .post('/v1/servers')
        .send(body({ name: 'chk2', hostKey: hostPub }))
        .expect(201)
    ).body;
    pool.fail = new TargetError('connect_failed', 'cannot connect: ECONNREFUSED');
    expect((await http().post(`/v1/servers/${s.id}/check`).expect(200)).body).toEqual({
      ok: false,
      error: { code: 'connect_failed', message: 'cannot connect: ECONNREFUSED' },
    });
    pool.fail = null;
    pool.exitCode = 1;
    const r = await http().post(`/v1/servers/${s.id}/check`).expect(200);
    expect(r.body.ok).toBe(false);
    expect(r.body.error.code).toBe('runner_error');
    const released = pool.released;
    pool.exitCode = 0;
    await http().post(`/v1/servers/${s.id}/check`).expect(200);
    expect(pool.released).toBe(released + 1);
  });

  it('wires the pool learner to the inventory', async () => {
    const servers = app.get(ServersService);
    const s = await servers.create(body({ name: 'wired' }) as any);
    expect(await pool.learner(s.id, { fingerprint: hostFp, type: 'ssh-ed25519' })).toBe(true);
    expect((await servers.get(s.id)).hostKeyFingerprint).toBe(hostFp);
  });

  it('documents the routes in OpenAPI', async () => {
    const doc = await http().get('/docs/json').expect(200);
    expect(Object.keys(doc.body.paths)).toEqual(
      expect.arrayContaining(['/v1/servers', '/v1/servers/{id}', '/v1/servers/{id}/check']),
    );
  });
});
