import { BadRequestException, ConflictException, Logger, NotFoundException } from '@nestjs/common';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import { AppConfig } from '../config/app-config';
import { loadConfig } from '../config/load-config';
import { TargetError } from '../executions/error-codes';
import { dataSourceOptions } from '../persistence/data-source-options';
import { ServerEntity } from '../persistence/entities/server.entity';
import { ServersRepository } from '../persistence/servers.repository';
import { CreateServerDto } from './dto/create-server.dto';
import { ServersService } from './servers.service';

const SECRET_FIELDS = ['privateKey', 'password', 'passphrase', 'credentials', 'becomePassword'];

describe('ServersService (SQLite)', () => {
  let dir: string;
  let ds: DataSource;
  let tofuConfig: AppConfig;
  let strictConfig: AppConfig;
  let svc: ServersService;
  let strict: ServersService;
  let plainKey: string;
  let encKey: string;
  let hostPub: string;
  let hostFp: string;
  let otherFp: string;
  let env: Record<string, string>;

  const keygen = (file: string, pass = '') => {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', pass, '-C', 'spec', '-f', file]);
    return fs.readFileSync(file, 'utf8');
  };
  const fpOf = (pubFile: string) =>
    execFileSync('ssh-keygen', ['-lf', pubFile], { encoding: 'utf8' }).split(/\s+/)[1];

  const base = (over: Partial<CreateServerDto> = {}): CreateServerDto => ({
    name: 'web-1',
    host: 'web-1.internal',
    username: 'deploy',
    privateKey: plainKey,
    ...over,
  });

  const repo = () => ds.getRepository(ServerEntity);

  beforeAll(async () => {
    Logger.overrideLogger(['error']);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-servers-'));
    plainKey = keygen(path.join(dir, 'client'));
    encKey = keygen(path.join(dir, 'client-enc'), 'correct horse');
    keygen(path.join(dir, 'host'));
    hostPub = fs.readFileSync(path.join(dir, 'host.pub'), 'utf8');
    hostFp = fpOf(path.join(dir, 'host.pub'));
    keygen(path.join(dir, 'other'));
    otherFp = fpOf(path.join(dir, 'other.pub'));

    env = {
      NODE_ENV: 'test',
      CRONIUM_DATA_DIR: dir,
      CRONIUM_SECRETS_KEY: 'x'.repeat(64),
      CRONIUM_JWT_SECRET: 'j'.repeat(48),
      CRONIUM_SERVICE_TOKENS: 'token-aaaaaaaaaaaaaaaa',
      DATABASE_URL: 'sqlite::memory:',
    };
    tofuConfig = loadConfig(env);
    strictConfig = loadConfig({ ...env, CRONIUM__HOST_KEYS__POLICY: 'strict' });
    expect(strictConfig.hostKeys.policy).toBe('strict');

    ds = new DataSource(dataSourceOptions('sqlite::memory:'));
    await ds.initialize();
  });

  beforeEach(async () => {
    await repo().clear();
    svc = new ServersService(new ServersRepository(ds), tofuConfig);
    strict = new ServersService(new ServersRepository(ds), strictConfig);
  });

  afterAll(async () => {
    await ds?.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('create / get / list', () => {
    it('creates a key server and returns a view without secrets', async () => {
      const view = await svc.create(base({ tags: ['web', 'eu', 'web'], port: 2222 }));
      expect(view).toEqual({
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        name: 'web-1',
        host: 'web-1.internal',
        port: 2222,
        username: 'deploy',
        authType: 'key',
        hasBecomePassword: false,
        hostKeyFingerprint: null,
        hostKeyType: null,
        hostKeyPinnedAt: null,
        hostKeySource: null,
        tags: ['web', 'eu'],
        baseDir: null,
        jumpServerId: null,
        createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        updatedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      });
      for (const f of SECRET_FIELDS) expect(view).not.toHaveProperty(f);
      expect(await svc.get(view.id)).toEqual(view);
      expect(await svc.get(view.id.toUpperCase())).toEqual(view);
    });

    it('defaults port to 22 and stores timestamps as epoch ms', async () => {
      const before = Date.now();
      const view = await svc.create(base());
      const row = await repo().findOneByOrFail({ id: view.id });
      expect(row.port).toBe(22);
      expect(typeof row.createdAt).toBe('number');
      expect(row.createdAt).toBeGreaterThanOrEqual(before);
      expect(view.createdAt).toBe(new Date(row.createdAt).toISOString());
    });

    it('stores credentials sealed, never in plaintext', async () => {
      const k = await svc.create(base({ privateKey: encKey, passphrase: 'correct horse' }));
      const p = await svc.create(
        base({ name: 'db-1', privateKey: undefined, password: 'hunter2-very-secret' }),
      );
      expect(p.authType).toBe('password');
      const raw: { id: string; credentials: string }[] = await ds.query(
        'SELECT id, credentials FROM servers',
      );
      const dump = JSON.stringify(await ds.query('SELECT * FROM servers'));
      const keyBody = encKey.split('\n')[1];
      expect(dump).not.toContain(keyBody);
      expect(dump).not.toContain('OPENSSH PRIVATE KEY');
      expect(dump).not.toContain('hunter2-very-secret');
      expect(dump).not.toContain('correct horse');
      for (const r of raw) expect(r.credentials).toMatch(/^v1\./);

      const ek = await svc.getEndpoint(k.id);
      expect(ek).toMatchObject({
        serverId: k.id,
        serverName: 'web-1',
        host: 'web-1.internal',
        port: 22,
        username: 'deploy',
        privateKey: encKey,
        passphrase: 'correct horse',
        hostKeyFingerprint: null,
        hostKeyType: null,
      });
      expect(ek.password).toBeUndefined();
      const ep = await svc.getEndpoint(p.id);
      expect(ep.password).toBe('hunter2-very-secret');
      expect(ep.privateKey).toBeUndefined();
    });

    it('seals becomePassword on its own: write-only, kept across new SSH credentials, removable', async () => {
      const s = await svc.create(base({ name: 'sudo', becomePassword: 'sudo-pw $(x)' }));
      expect(s.hasBecomePassword).toBe(true);
      for (const f of SECRET_FIELDS) expect(s).not.toHaveProperty(f);
      expect(JSON.stringify(await ds.query('SELECT * FROM servers'))).not.toContain('sudo-pw');
      expect((await svc.getEndpoint(s.id)).becomePassword).toBe('sudo-pw $(x)');
      await svc.update(s.id, { password: 'new-ssh-pw' });
      expect((await svc.getEndpoint(s.id)).becomePassword).toBe('sudo-pw $(x)');
      await expect(svc.update(s.id, { becomePassword: 'a\nb' })).rejects.toThrow(
        /becomePassword must not contain line breaks/,
      );
      const cleared = await svc.update(s.id, { becomePassword: null });
      expect(cleared.hasBecomePassword).toBe(false);
      expect((await svc.getEndpoint(s.id)).becomePassword).toBeUndefined();
    });

    it('binds sealed credentials to their server id', async () => {
      const a = await svc.create(base({ name: 'a' }));
      const b = await svc.create(base({ name: 'b', privateKey: undefined, password: 'pw-b' }));
      const rowA = await repo().findOneByOrFail({ id: a.id });
      await repo().update({ id: b.id }, { credentials: rowA.credentials, authType: 'key' });
      await expect(svc.getEndpoint(b.id)).rejects.toMatchObject({
        code: 'auth_failed',
      });
      await expect(svc.getEndpoint(b.id)).rejects.toBeInstanceOf(TargetError);
    });

    it('keeps the decrypted endpoint until the server changes (here, or forgetEndpoint from another replica)', async () => {
      const s = await svc.create(base());
      expect((await svc.getEndpoint(s.id)).username).toBe('deploy');
      // Written behind the service's back (as another replica would): not read again...
      await repo().update({ id: s.id }, { username: 'behind-its-back' });
      expect((await svc.getEndpoint(s.id)).username).toBe('deploy');
      // ...until that replica's message arrives.
      svc.forgetEndpoint(s.id.toUpperCase());
      expect((await svc.getEndpoint(s.id)).username).toBe('behind-its-back');
      // An edit here is seen at once, and so is a delete.
      await svc.update(s.id, { username: 'edited' });
      expect((await svc.getEndpoint(s.id)).username).toBe('edited');
      const ep = await svc.getEndpoint(s.id);
      ep.username = 'mutated by a caller';
      expect((await svc.getEndpoint(s.id)).username).toBe('edited');
      await svc.remove(s.id);
      await expect(svc.getEndpoint(s.id)).rejects.toBeInstanceOf(NotFoundException);
    });

    it('cannot open credentials with another secrets key', async () => {
      const a = await svc.create(base());
      const other = new ServersService(new ServersRepository(ds), {
        ...tofuConfig,
        secrets: { key: 'y'.repeat(64) },
      } as AppConfig);
      await expect(other.getEndpoint(a.id)).rejects.toMatchObject({ code: 'auth_failed' });
    });

    it('lists servers ordered by name', async () => {
      for (const name of ['m', 'b', 'z', 'a']) await svc.create(base({ name }));
      expect((await svc.list()).items.map((s) => s.name)).toEqual(['a', 'b', 'm', 'z']);
      for (const v of (await svc.list()).items)
        for (const f of SECRET_FIELDS) expect(v).not.toHaveProperty(f);
    });

    it('filters by every tag (AND) and a literal name prefix, and pages by cursor', async () => {
      const servers: [string, string[]][] = [
        ['web-1', ['web', 'eu']],
        ['web-2', ['web']],
        ['web_3', ['web', 'eu']],
        ['webX', ['eu']],
        ['50%-off', ['eu']],
        ['500', ['eu']],
        ['db-1', ['db', 'eu']],
      ];
      for (const [name, tags] of servers) await svc.create(base({ name, tags }));
      const names = async (q: Parameters<ServersService['list']>[0]) =>
        (await svc.list(q)).items.map((s) => s.name);
      expect(await names({ tag: ['web', 'eu'] })).toEqual(['web-1', 'web_3']);
      expect(await names({ tag: ['web'] })).toEqual(['web-1', 'web-2', 'web_3']);
      expect(await names({ tag: ['nope'] })).toEqual([]);
      expect(await names({ name: 'web-' })).toEqual(['web-1', 'web-2']);
      // `_` and `%` are plain characters, not LIKE wildcards
      expect(await names({ name: 'web_' })).toEqual(['web_3']);
      expect(await names({ name: '50%' })).toEqual(['50%-off']);
      expect(await names({ name: 'WEB' })).toEqual([]);
      expect(await names({ name: 'web', tag: ['eu'] })).toEqual(['web-1', 'webX', 'web_3']);
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await svc.list({ tag: ['eu'], limit: 2, cursor });
        expect(page.items.length).toBeLessThanOrEqual(2);
        seen.push(...page.items.map((s) => s.name));
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      expect(seen).toEqual(['50%-off', '500', 'db-1', 'web-1', 'webX', 'web_3']);
      await expect(svc.list({ cursor: 'bm90LWEtY3Vyc29y' })).rejects.toThrow(/cursor/);
    });

    it('refuses a duplicate name with 409', async () => {
      await svc.create(base());
      await expect(svc.create(base({ host: '10.0.0.2' }))).rejects.toBeInstanceOf(
        ConflictException,
      );
      expect((await svc.list()).items).toHaveLength(1);
    });

    it('maps a unique-index race to 409', async () => {
      await svc.create(base());
      // bypass the pre-check: the insert itself must turn into a conflict, not a 500
      (svc as any).assertNameFree = async () => undefined;
      await expect(svc.create(base())).rejects.toBeInstanceOf(ConflictException);
    });

    it('pins a given host key (public key line or fingerprint)', async () => {
      const a = await svc.create(base({ name: 'a', hostKey: hostPub }));
      expect(a.hostKeyFingerprint).toBe(hostFp);
      expect(a.hostKeyType).toBe('ssh-ed25519');
      const b = await svc.create(base({ name: 'b', hostKey: hostFp }));
      expect(b.hostKeyFingerprint).toBe(hostFp);
      expect(b.hostKeyType).toBeNull();
      await expect(svc.create(base({ name: 'c', hostKey: 'nonsense' }))).rejects.toThrow(
        /^hostKey: /,
      );
    });

    it.each([
      ['neither credential', { privateKey: undefined }, /privateKey, password: exactly one/],
      ['both credentials', { password: 'pw' }, /privateKey, password: give one of them/],
      ['an unparsable key', { privateKey: 'not a key' }, /^privateKey: cannot be parsed/],
      [
        'a passphrase with a password',
        { privateKey: undefined, password: 'p', passphrase: 'x' },
        /^passphrase/,
      ],
      ['a bad host', { host: '-oProxyCommand=x' }, /^host must be/],
      ['a bad username', { username: '1root' }, /^username must/],
      ['a bad port', { port: 70000 }, /^port must/],
      ['a bad tag', { tags: ['ok', 'not ok'] }, /^tags must/],
      ['a bad baseDir', { baseDir: '~/../etc' }, /^baseDir must/],
      ['a blank name', { name: '  ' }, /^name must not be blank/],
      ['a name with a newline', { name: 'a\nb' }, /^name must not contain control/],
    ])('refuses %s with 400', async (_what, over, msg) => {
      const p = svc.create(base(over as Partial<CreateServerDto>));
      await expect(p).rejects.toBeInstanceOf(BadRequestException);
      await expect(svc.create(base(over as Partial<CreateServerDto>))).rejects.toThrow(msg);
    });

    it('explains an encrypted key without passphrase and never echoes the key', async () => {
      let err: any;
      try {
        await svc.create(base({ privateKey: encKey }));
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(BadRequestException);
      expect(err.message).toMatch(/^privateKey: is encrypted/);
      await expect(svc.create(base({ privateKey: encKey, passphrase: 'wrong' }))).rejects.toThrow(
        'privateKey: cannot be parsed (wrong passphrase?)',
      );
      try {
        await svc.create(base({ privateKey: encKey, passphrase: 'wrong' }));
      } catch (e) {
        expect(JSON.stringify((e as BadRequestException).getResponse())).not.toContain(
          encKey.split('\n')[1].slice(0, 20),
        );
      }
    });

    it.each(['00000000-0000-4000-8000-000000000000', 'not-a-uuid', "1' OR '1'='1", ''])(
      'answers 404 for id %j',
      async (id) => {
        await expect(svc.get(id)).rejects.toBeInstanceOf(NotFoundException);
        await expect(svc.getEndpoint(id)).rejects.toBeInstanceOf(NotFoundException);
        await expect(svc.update(id, { name: 'x' })).rejects.toBeInstanceOf(NotFoundException);
        await expect(svc.remove(id)).rejects.toBeInstanceOf(NotFoundException);
      },
    );

    it('names the id in the 404 message', async () => {
      const id = '00000000-0000-4000-8000-000000000000';
      await expect(svc.get(id)).rejects.toThrow(`server ${id} not found`);
    });
  });

  describe('update', () => {
    it('changes only the given fields and emits a change', async () => {
      const s = await svc.create(base({ hostKey: hostPub, tags: ['a'] }));
      const seen: string[] = [];
      const sub = svc.changes$.subscribe((id) => seen.push(id));
      const u = await svc.update(s.id, { tags: ['b', 'b', 'c'], baseDir: '/srv/cronium' });
      sub.unsubscribe();
      expect(u).toMatchObject({
        name: 'web-1',
        host: 'web-1.internal',
        tags: ['b', 'c'],
        baseDir: '/srv/cronium',
        hostKeyFingerprint: hostFp,
      });
      expect(Date.parse(u.updatedAt)).toBeGreaterThan(Date.parse(s.updatedAt));
      expect(u.createdAt).toBe(s.createdAt);
      expect(seen).toEqual([s.id]);
      expect((await svc.update(s.id, { baseDir: null })).baseDir).toBeNull();
    });

    it('keeps the pin when only the port or username changes; a new host clears it', async () => {
      const s = await svc.create(base({ hostKey: hostPub }));
      expect(s).toMatchObject({ hostKeyFingerprint: hostFp, hostKeySource: 'given' });
      expect(Date.parse(s.hostKeyPinnedAt!)).toBeGreaterThan(0);
      for (const change of [{ port: 2200 }, { username: 'other' }]) {
        const u = await svc.update(s.id, change);
        expect(u).toMatchObject({ ...change, hostKeyFingerprint: hostFp, hostKeySource: 'given' });
      }
      const moved = await svc.update(s.id, { host: '10.0.0.9' });
      expect(moved).toMatchObject({
        hostKeyFingerprint: null,
        hostKeyType: null,
        hostKeyPinnedAt: null,
        hostKeySource: null,
      });
      // moved with a new key: the new key is pinned, as given
      const given = await svc.update(s.id, { host: '10.0.0.10', hostKey: otherFp });
      expect(given).toMatchObject({ hostKeyFingerprint: otherFp, hostKeySource: 'given' });
      // explicit unpin: trusted again on the next first contact, and shown as such
      expect((await svc.update(s.id, { hostKey: null })).hostKeyFingerprint).toBeNull();
      const seen = { fingerprint: hostFp, type: 'ssh-ed25519' };
      expect(await svc.learnHostKey(s.id, seen)).toBe(true);
      expect(await svc.get(s.id)).toMatchObject({
        hostKeyFingerprint: hostFp,
        hostKeySource: 'tofu',
      });
    });

    it('replaces credentials and auth type', async () => {
      const s = await svc.create(base());
      const p = await svc.update(s.id, { password: 'new-pass' });
      expect(p.authType).toBe('password');
      expect(await svc.getEndpoint(s.id)).toMatchObject({ password: 'new-pass' });
      expect((await svc.getEndpoint(s.id)).privateKey).toBeUndefined();

      const k = await svc.update(s.id, { privateKey: encKey, passphrase: 'correct horse' });
      expect(k.authType).toBe('key');
      const ep = await svc.getEndpoint(s.id);
      expect(ep).toMatchObject({ privateKey: encKey, passphrase: 'correct horse' });
      expect(ep.password).toBeUndefined();

      await expect(svc.update(s.id, { passphrase: 'wrong' })).rejects.toThrow(/^passphrase/);
      await expect(svc.update(s.id, { privateKey: plainKey, password: 'x' })).rejects.toThrow(
        BadRequestException,
      );
      await expect(svc.update(s.id, { privateKey: 'junk' })).rejects.toThrow(
        /^privateKey: cannot be parsed/,
      );
      const dump = JSON.stringify(await ds.query('SELECT * FROM servers'));
      expect(dump).not.toContain('new-pass');
      expect(dump).not.toContain(encKey.split('\n')[1]);
    });

    it('refuses a name taken by another server with 409, allows its own', async () => {
      const a = await svc.create(base({ name: 'a' }));
      await svc.create(base({ name: 'b' }));
      await expect(svc.update(a.id, { name: 'b' })).rejects.toBeInstanceOf(ConflictException);
      expect((await svc.update(a.id, { name: 'a' })).name).toBe('a');
      expect((await svc.update(a.id, { name: 'c' })).name).toBe('c');
    });

    it('refuses null for non-nullable fields', async () => {
      const s = await svc.create(base());
      await expect(svc.update(s.id, { name: null as any })).rejects.toBeInstanceOf(
        BadRequestException,
      );
      await expect(svc.update(s.id, { port: null as any })).rejects.toBeInstanceOf(
        BadRequestException,
      );
    });

    it('an empty patch changes nothing and emits nothing', async () => {
      const s = await svc.create(base());
      const seen: string[] = [];
      const sub = svc.changes$.subscribe((id) => seen.push(id));
      expect(await svc.update(s.id, {})).toEqual(s);
      sub.unsubscribe();
      expect(seen).toEqual([]);
    });
  });

  describe('remove', () => {
    it('deletes, emits, and then answers 404', async () => {
      const s = await svc.create(base());
      const seen: string[] = [];
      const sub = svc.changes$.subscribe((id) => seen.push(id));
      await expect(svc.remove(s.id)).resolves.toBeUndefined();
      sub.unsubscribe();
      expect(seen).toEqual([s.id]);
      await expect(svc.get(s.id)).rejects.toBeInstanceOf(NotFoundException);
      await expect(svc.remove(s.id)).rejects.toBeInstanceOf(NotFoundException);
    });
  });

  describe('learnHostKey (trust on first use)', () => {
    const seenA = () => ({ fingerprint: hostFp, type: 'ssh-ed25519' });
    const seenB = () => ({ fingerprint: otherFp, type: 'ssh-ed25519' });

    it('pins the first key seen; a different key later is refused', async () => {
      const s = await svc.create(base());
      expect(await svc.learnHostKey(s.id, seenA())).toBe(true);
      expect(await svc.get(s.id)).toMatchObject({
        hostKeyFingerprint: hostFp,
        hostKeyType: 'ssh-ed25519',
      });
      expect(await svc.learnHostKey(s.id, seenA())).toBe(true);
      expect(await svc.learnHostKey(s.id, seenB())).toBe(false);
      expect((await svc.get(s.id)).hostKeyFingerprint).toBe(hostFp);
      expect((await svc.getEndpoint(s.id)).hostKeyFingerprint).toBe(hostFp);
    });

    it('first of two concurrent learners wins', async () => {
      const s = await svc.create(base());
      const results = await Promise.all([
        svc.learnHostKey(s.id, seenA()),
        svc.learnHostKey(s.id, seenB()),
      ]);
      expect(results.filter(Boolean)).toHaveLength(1);
      const pinned = (await svc.get(s.id)).hostKeyFingerprint;
      expect(pinned).toBe(results[0] ? hostFp : otherFp);
    });

    it('never overrides a given pin, and fills in the type of a fingerprint-only pin', async () => {
      const s = await svc.create(base({ hostKey: hostFp }));
      expect(await svc.learnHostKey(s.id, seenB())).toBe(false);
      expect(await svc.learnHostKey(s.id, seenA())).toBe(true);
      expect(await svc.get(s.id)).toMatchObject({
        hostKeyFingerprint: hostFp,
        hostKeyType: 'ssh-ed25519',
      });
    });

    it('does not learn for an endpoint the server no longer has', async () => {
      const s = await svc.create(base());
      const stale = { host: 'old.internal', port: 22, username: 'deploy' };
      expect(await svc.learnHostKey(s.id, seenA(), stale)).toBe(false);
      expect((await svc.get(s.id)).hostKeyFingerprint).toBeNull();
      const cur = { host: 'web-1.internal', port: 22, username: 'deploy' };
      expect(await svc.learnHostKey(s.id, seenA(), cur)).toBe(true);
    });

    it('returns false for unknown or malformed ids', async () => {
      expect(await svc.learnHostKey('00000000-0000-4000-8000-000000000000', seenA())).toBe(false);
      expect(await svc.learnHostKey('nope', seenA())).toBe(false);
    });
  });

  describe('strict host-key policy', () => {
    it('requires hostKey on create', async () => {
      await expect(strict.create(base())).rejects.toThrow(/hostKey: is required .*strict/);
      const s = await strict.create(base({ hostKey: hostPub }));
      expect(s.hostKeyFingerprint).toBe(hostFp);
    });

    it('never learns', async () => {
      const s = await svc.create(base()); // registered under tofu, unpinned
      expect(await strict.learnHostKey(s.id, { fingerprint: hostFp, type: 'ssh-ed25519' })).toBe(
        false,
      );
      expect((await strict.get(s.id)).hostKeyFingerprint).toBeNull();
    });

    it('refuses to move a server or unpin it without a new hostKey', async () => {
      const s = await strict.create(base({ hostKey: hostPub }));
      await expect(strict.update(s.id, { host: '10.1.1.1' })).rejects.toThrow(
        /hostKey: is required when the host changes/,
      );
      await expect(strict.update(s.id, { hostKey: null })).rejects.toBeInstanceOf(
        BadRequestException,
      );
      const moved = await strict.update(s.id, { host: '10.1.1.1', hostKey: otherFp });
      expect(moved).toMatchObject({ host: '10.1.1.1', hostKeyFingerprint: otherFp });
      expect((await strict.update(s.id, { tags: ['x'] })).hostKeyFingerprint).toBe(otherFp);
    });
  });

  describe('findByIdsAndTags', () => {
    it('returns the de-duplicated union ordered by name', async () => {
      const c = await svc.create(base({ name: 'c', tags: ['web'] }));
      const a = await svc.create(base({ name: 'a', tags: ['db'] }));
      const b = await svc.create(base({ name: 'b', tags: ['web', 'db'] }));
      await svc.create(base({ name: 'd', tags: ['other'] }));

      const byTag = await svc.findByIdsAndTags({ tags: ['web'] });
      expect(byTag.map((s) => s.name)).toEqual(['b', 'c']);
      const both = await svc.findByIdsAndTags({ serverIds: [c.id, a.id, c.id], tags: ['db'] });
      expect(both.map((s) => s.name)).toEqual(['a', 'b', 'c']);
      expect(both[0]).toBeInstanceOf(ServerEntity);
      expect((await svc.findByIdsAndTags({ serverIds: [b.id.toUpperCase()] }))[0].id).toBe(b.id);
      expect(await svc.findByIdsAndTags({ tags: ['nothing'] })).toEqual([]);
      expect(await svc.findByIdsAndTags({})).toEqual([]);
    });

    it('names unknown ids in a 404', async () => {
      const a = await svc.create(base({ name: 'a' }));
      const missing = '00000000-0000-4000-8000-000000000000';
      const p = svc.findByIdsAndTags({ serverIds: [a.id, missing, 'bogus'], tags: ['x'] });
      await expect(p).rejects.toBeInstanceOf(NotFoundException);
      await expect(svc.findByIdsAndTags({ serverIds: [a.id, missing, 'bogus'] })).rejects.toThrow(
        `servers not found: ${missing}, bogus`,
      );
    });
  });

  it('baseDirOf prefers the server value over the configured default', async () => {
    expect(svc.baseDirOf({ baseDir: null })).toBe(tofuConfig.runner.baseDir);
    expect(svc.baseDirOf({ baseDir: '/opt/c' })).toBe('/opt/c');
  });

  describe('jump hosts (jumpServerId)', () => {
    const bad = (p: Promise<unknown>, re: RegExp) =>
      expect(p).rejects.toThrow(
        expect.objectContaining({ status: 400, message: expect.stringMatching(re) }),
      );
    /** a ← b ← c: c is reached through b, b through a. */
    const chain = async (n: number) => {
      const ids: string[] = [];
      for (let i = 0; i < n; i++) {
        const v = await svc.create(base({ name: `hop-${i}`, jumpServerId: ids[i - 1] }));
        ids.push(v.id);
      }
      return ids;
    };

    it('stores the jump, shows it, and resolves the chain into the endpoint (nearest first)', async () => {
      const [a, b, c] = await chain(3);
      expect((await svc.get(c)).jumpServerId).toBe(b);
      const ep = await svc.getEndpoint(c);
      expect([
        ep.serverId,
        ep.jump?.serverId,
        ep.jump?.jump?.serverId,
        ep.jump?.jump?.jump,
      ]).toEqual([c, b, a, undefined]);
      expect(ep.jump?.privateKey).toBe(plainKey);
      await svc.update(c, { jumpServerId: null });
      expect((await svc.get(c)).jumpServerId).toBeNull();
      expect((await svc.getEndpoint(c)).jump).toBeUndefined();
    });

    it('refuses an unknown, malformed or own id, a cycle and a chain over ssh.maxJumpDepth, changing nothing', async () => {
      const [a, b, c] = await chain(3);
      await bad(
        svc.create(base({ name: 'x', jumpServerId: '00000000-0000-4000-8000-000000000000' })),
        /^jumpServerId: server .* not found/,
      );
      await bad(
        svc.create(base({ name: 'x', jumpServerId: 'not-a-uuid' })),
        /^jumpServerId must be a server id/,
      );
      await bad(
        svc.update(a, { jumpServerId: a }),
        /^jumpServerId: a server cannot be its own jump host/,
      );
      await bad(svc.update(a, { jumpServerId: c }), /^jumpServerId: .*cycle/);
      // depth 3 is the default: c is 2 hops deep, a server behind c would be 3, behind that 4.
      const d = await svc.create(base({ name: 'd', jumpServerId: c }));
      await bad(
        svc.create(base({ name: 'e', jumpServerId: d.id })),
        /^jumpServerId: the jump chain would be 4 hops long; at most 3/,
      );
      // Giving a a jump makes every chain through it longer too.
      const z = await svc.create(base({ name: 'z' }));
      await bad(svc.update(a, { jumpServerId: z.id }), /would be 4 hops/);
      expect((await svc.get(a)).jumpServerId).toBeNull();
      expect((await svc.list()).items.map((s) => s.name).sort()).toEqual([
        'd',
        'hop-0',
        'hop-1',
        'hop-2',
        'z',
      ]);
      expect((await svc.get(b)).jumpServerId).toBe(a);
    });

    it('follows ssh.maxJumpDepth as configured', async () => {
      const one = new ServersService(
        new ServersRepository(ds),
        loadConfig({ ...env, CRONIUM__SSH__MAX_JUMP_DEPTH: '1' }),
      );
      const [, b] = await chain(2);
      await bad(
        one.create(base({ name: 'x', jumpServerId: b })),
        /would be 2 hops long; at most 1 \(ssh\.maxJumpDepth\)/,
      );
    });

    it('refuses to delete a server others jump through (409 naming them), then deletes it once they moved', async () => {
      const [a, b] = await chain(2);
      await expect(svc.remove(a)).rejects.toThrow(
        expect.objectContaining({
          status: 409,
          message: expect.stringMatching(/jump host of "hop-1"/),
        }),
      );
      expect((await svc.get(a)).id).toBe(a);
      await svc.update(b, { jumpServerId: null });
      await svc.remove(a);
      await expect(svc.get(a)).rejects.toBeInstanceOf(NotFoundException);
    });

    it('an edited jump host is read again for the servers behind it (their cached endpoints go)', async () => {
      const [a, , c] = await chain(3);
      expect((await svc.getEndpoint(c)).jump?.jump?.host).toBe('web-1.internal');
      // Another replica's edit: the row changes, this replica hears of it via forgetEndpoint.
      await repo().update({ id: a }, { host: 'moved.internal' });
      svc.forgetEndpoint(a);
      expect((await svc.getEndpoint(c)).jump?.jump?.host).toBe('moved.internal');
    });

    it('a row whose jump went missing behind the checks fails the connect with a clear message', async () => {
      const [, b] = await chain(2);
      await repo().update({ id: b }, { jumpServerId: '00000000-0000-4000-8000-000000000000' });
      svc.forgetEndpoint(b);
      const err = await svc.getEndpoint(b).catch((e) => e);
      expect(err).toBeInstanceOf(TargetError);
      expect(err.message).toMatch(
        /jump host 00000000-0000-4000-8000-000000000000 of hop-1 is not in the inventory/,
      );
    });
  });
});
