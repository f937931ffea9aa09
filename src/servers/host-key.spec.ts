import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  fingerprintOfBlob,
  HostKeyFormatError,
  keyTypeOfBlob,
  parseHostKeyInput,
} from './host-key';

describe('host-key', () => {
  let dir: string;
  const keys: Record<string, { pub: string; keygenFp: string; type: string }> = {};

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-hostkey-'));
    for (const [name, args, type] of [
      ['ed25519', ['-t', 'ed25519'], 'ssh-ed25519'],
      ['rsa', ['-t', 'rsa', '-b', '2048'], 'ssh-rsa'],
      ['ecdsa', ['-t', 'ecdsa', '-b', '256'], 'ecdsa-sha2-nistp256'],
    ] as const) {
      const file = path.join(dir, name);
      execFileSync('ssh-keygen', ['-q', ...args, '-N', '', '-C', `test ${name}`, '-f', file]);
      const pub = fs.readFileSync(file + '.pub', 'utf8');
      const out = execFileSync('ssh-keygen', ['-lf', file + '.pub'], {
        encoding: 'utf8',
      });
      const keygenFp = out.split(/\s+/)[1];
      keys[name] = { pub, keygenFp, type };
    }
  });

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it.each(['ed25519', 'rsa', 'ecdsa'])(
    'matches ssh-keygen -lf for a %s public key line',
    (name) => {
      const { pub, keygenFp, type } = keys[name];
      expect(keygenFp).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
      expect(parseHostKeyInput(pub)).toEqual({ fingerprint: keygenFp, type });
      // without the comment, and with surrounding whitespace
      const [t, b64] = pub.trim().split(' ');
      expect(parseHostKeyInput(`  ${t}\t${b64}  \n`)).toEqual({ fingerprint: keygenFp, type });
      const blob = Buffer.from(b64, 'base64');
      expect(fingerprintOfBlob(blob)).toBe(keygenFp);
      expect(keyTypeOfBlob(blob)).toBe(type);
    },
  );

  it('accepts a known_hosts line with a leading host field', () => {
    const { pub, keygenFp, type } = keys.ed25519;
    const [t, b64] = pub.trim().split(' ');
    expect(parseHostKeyInput(`[127.0.0.1]:2222,example.com ${t} ${b64}`)).toEqual({
      fingerprint: keygenFp,
      type,
    });
    expect(parseHostKeyInput(`|1|c2FsdA==|aGFzaA== ${t} ${b64} comment`)).toEqual({
      fingerprint: keygenFp,
      type,
    });
  });

  it('accepts a bare SHA256 fingerprint, with or without one trailing =', () => {
    const fp = keys.rsa.keygenFp;
    expect(parseHostKeyInput(fp)).toEqual({ fingerprint: fp, type: null });
    expect(parseHostKeyInput(fp + '=')).toEqual({ fingerprint: fp, type: null });
    expect(parseHostKeyInput(` ${fp} `)).toEqual({ fingerprint: fp, type: null });
  });

  it('refuses a key whose stated type differs from the type inside the blob', () => {
    const [, b64] = keys.ed25519.pub.trim().split(' ');
    expect(() => parseHostKeyInput(`ssh-rsa ${b64}`)).toThrow(/does not match/);
  });

  it.each([
    ['empty', ''],
    ['garbage', 'hello world'],
    ['short fingerprint', 'SHA256:abc'],
    ['long fingerprint', 'SHA256:' + 'A'.repeat(44)],
    ['md5 fingerprint', 'MD5:12:34:56'],
    ['bad base64', 'ssh-ed25519 AAAA$$$'],
    ['truncated blob', 'ssh-ed25519 AAAA'],
    ['two lines', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5'],
    ['revoked marker', '@revoked * ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA=='],
    ['private key', '-----BEGIN OPENSSH ' + 'PRIVATE KEY-----'], // built up: no key material here
  ])('refuses %s with a typed error', (_name, input) => {
    expect(() => parseHostKeyInput(input)).toThrow(HostKeyFormatError);
  });

  it('never echoes a refused private key in the message', () => {
    const secret = fs.readFileSync(path.join(dir, 'ed25519'), 'utf8');
    let err: unknown;
    try {
      parseHostKeyInput(secret);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HostKeyFormatError);
    expect((err as Error).message).not.toContain(secret.split('\n')[1]);
  });

  it('keyTypeOfBlob refuses blobs that are too short or inconsistent', () => {
    expect(() => keyTypeOfBlob(Buffer.alloc(2))).toThrow(HostKeyFormatError);
    const b = Buffer.alloc(8);
    b.writeUInt32BE(100, 0);
    expect(() => keyTypeOfBlob(b)).toThrow(HostKeyFormatError);
  });
});
