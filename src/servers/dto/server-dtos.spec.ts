import { BadRequestException } from '@nestjs/common';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeValidationPipe } from '../../common/validation';
import { CreateServerDto } from './create-server.dto';
import { UpdateServerDto } from './update-server.dto';

const HOST_PUB_MARKER = '__HOST_PUB__';

describe('server DTO validation', () => {
  const pipe = makeValidationPipe();
  let dir: string;
  let key: string;
  let encKey: string;
  let hostPub: string;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-dto-'));
    const gen = (name: string, pass: string) => {
      const f = path.join(dir, name);
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', pass, '-f', f]);
      return f;
    };
    key = fs.readFileSync(gen('k', ''), 'utf8');
    encKey = fs.readFileSync(gen('e', 'pw'), 'utf8');
    hostPub = fs.readFileSync(gen('h', '') + '.pub', 'utf8');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const create = (body: unknown) =>
    pipe.transform(body, { type: 'body', metatype: CreateServerDto });
  const update = (body: unknown) =>
    pipe.transform(body, { type: 'body', metatype: UpdateServerDto });
  const messageOf = async (p: Promise<unknown>): Promise<string> => {
    try {
      await p;
    } catch (e) {
      expect(e).toBeInstanceOf(BadRequestException);
      return (e as BadRequestException).message;
    }
    throw new Error('expected a 400');
  };
  const ok = () => ({ name: 'web-1', host: 'web-1.internal', username: 'deploy', privateKey: key });

  it('accepts a valid body', async () => {
    const dto = await create({
      ...ok(),
      port: 2222,
      hostKey: hostPub,
      tags: ['web', 'eu-west:1'],
      baseDir: '~/.cache/cronium',
    });
    expect(dto).toBeInstanceOf(CreateServerDto);
    expect(dto.port).toBe(2222);
    await expect(create({ ...ok(), privateKey: encKey, passphrase: 'pw' })).resolves.toBeTruthy();
    for (const host of ['10.0.0.1', '::1', 'fe80::1%eth0', 'a-b.c-d.example', 'localhost']) {
      await expect(create({ ...ok(), host })).resolves.toBeTruthy();
    }
    for (const baseDir of ['~', '~/x', '/srv/cronium', '/opt/a.b/c_d-e']) {
      await expect(create({ ...ok(), baseDir })).resolves.toBeTruthy();
    }
  });

  it.each([
    ['name', { name: '' }, /^name must be 1 to 200/],
    ['name', { name: 'x'.repeat(201) }, /^name must be 1 to 200/],
    ['name', { name: 'a\u0007b' }, /^name must not contain control/],
    ['host', { host: '-oProxyCommand=sh' }, /^host must be a hostname/],
    ['host', { host: 'a b' }, /^host must be a hostname/],
    ['host', { host: 'a;b' }, /^host must be a hostname/],
    ['host', { host: '1.2.3' }, /^host must be a hostname/],
    ['host', { host: 'a..b' }, /^host must be a hostname/],
    ['host', { host: 'fe80::1%$(x)' }, /^host must be a hostname/],
    ['host', { host: 'a'.repeat(256) }, /^host must be at most 255/],
    ['port', { port: 0 }, /^port must not be less than 1/],
    ['port', { port: 65536 }, /^port must not be greater than 65535/],
    ['port', { port: 22.5 }, /^port must be an integer/],
    ['port', { port: null }, /port must be an integer/],
    ['username', { username: '-root' }, /^username must start/],
    ['username', { username: 'a'.repeat(65) }, /^username must start/],
    ['privateKey', { privateKey: 'junk' }, /^privateKey: cannot be parsed \(wrong passphrase\?\)$/],
    ['privateKey', { privateKey: HOST_PUB_MARKER }, /^privateKey: is a public key/],
    ['hostKey', { hostKey: 'SHA256:short' }, /^hostKey: /],
    ['tags', { tags: ['a b'] }, /^tags must hold/],
    [
      'tags',
      { tags: Array.from({ length: 51 }, (_, i) => `t${i}`) },
      /^tags must contain no more than 50/,
    ],
    ['tags', { tags: 'web' }, /tags must be an array/],
    ['baseDir', { baseDir: 'relative' }, /^baseDir must be/],
    ['baseDir', { baseDir: '~/a/../b' }, /^baseDir must be/],
    ['baseDir', { baseDir: '/a//b' }, /^baseDir must be/],
    ['baseDir', { baseDir: '~/a b' }, /^baseDir must be/],
    ['baseDir', { baseDir: '~/$(id)' }, /^baseDir must be/],
    ['baseDir', { baseDir: '/a/' }, /^baseDir must be/],
    ['baseDir', { baseDir: '/' + 'a'.repeat(200) }, /^baseDir must be at most 200/],
    ['unknown field', { admin: true }, /property admin should not exist/],
  ])('refuses a bad %s', async (_f, over, msg) => {
    const body: Record<string, unknown> = { ...ok(), ...over };
    if (body.privateKey === HOST_PUB_MARKER) body.privateKey = hostPub;
    expect(await messageOf(create(body))).toMatch(msg);
  });

  it('refuses a wrong passphrase without echoing the key', async () => {
    const msg = await messageOf(create({ ...ok(), privateKey: encKey, passphrase: 'nope' }));
    expect(msg).toBe('privateKey: cannot be parsed (wrong passphrase?)');
    const msg2 = await messageOf(create({ ...ok(), privateKey: encKey }));
    expect(msg2).toBe('privateKey: is encrypted; give its passphrase');
  });

  it('UpdateServerDto: all optional, null only for hostKey and baseDir', async () => {
    await expect(update({})).resolves.toBeInstanceOf(UpdateServerDto);
    await expect(update({ hostKey: null, baseDir: null })).resolves.toBeTruthy();
    expect(await messageOf(update({ name: null }))).toMatch(/^name must be a string/);
    expect(await messageOf(update({ tags: null }))).toMatch(/tags must be an array/);
    expect(await messageOf(update({ host: 'bad host' }))).toMatch(/^host must be/);
    expect(await messageOf(update({ privateKey: 'junk' }))).toMatch(/^privateKey: cannot/);
  });
});
