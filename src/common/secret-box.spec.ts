import { SecretBox, SecretBoxError } from './secret-box';

describe('SecretBox', () => {
  const hexKey = 'ab'.repeat(32);

  it('round-trips with a hex key and with a passphrase-style key', () => {
    for (const key of [hexKey, 'a long passphrase that is not hex at all!']) {
      const box = new SecretBox(key);
      const sealed = box.seal('hello ✓ secret', 'server-1');
      expect(sealed).toMatch(/^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]+$/);
      expect(sealed).not.toContain('hello');
      expect(box.open(sealed, 'server-1')).toBe('hello ✓ secret');
    }
  });

  it('round-trips the empty string', () => {
    const box = new SecretBox(hexKey);
    expect(box.open(box.seal('', 'x'), 'x')).toBe('');
  });

  it('uses a fresh IV every time', () => {
    const box = new SecretBox(hexKey);
    expect(box.seal('same', 'id')).not.toBe(box.seal('same', 'id'));
  });

  it('refuses a different AAD (value moved to another record)', () => {
    const box = new SecretBox(hexKey);
    const sealed = box.seal('secret', 'server-1');
    expect(() => box.open(sealed, 'server-2')).toThrow(SecretBoxError);
  });

  it('refuses a different key', () => {
    const sealed = new SecretBox(hexKey).seal('secret', 'id');
    expect(() => new SecretBox('cd'.repeat(32)).open(sealed, 'id')).toThrow(SecretBoxError);
    // the hex string used as a passphrase derives a different key than the raw bytes
    expect(() => new SecretBox(hexKey.toUpperCase() + 'x').open(sealed, 'id')).toThrow(
      SecretBoxError,
    );
  });

  it('accepts upper-case hex as the same raw key', () => {
    const sealed = new SecretBox(hexKey).seal('secret', 'id');
    expect(new SecretBox(hexKey.toUpperCase()).open(sealed, 'id')).toBe('secret');
  });

  it('detects tampering with any part', () => {
    const box = new SecretBox(hexKey);
    const sealed = box.seal('some secret text', 'id');
    const parts = sealed.split('.');
    for (let i = 1; i < 4; i++) {
      const buf = Buffer.from(parts[i], 'base64url');
      buf[0] ^= 1;
      const copy = [...parts];
      copy[i] = buf.toString('base64url');
      expect(() => box.open(copy.join('.'), 'id')).toThrow(SecretBoxError);
    }
  });

  it('rejects malformed input', () => {
    const box = new SecretBox(hexKey);
    for (const bad of ['', 'v1', 'v2.a.b.c', 'v1.a.b', 'v1.!!.??.**', 'v1...']) {
      expect(() => box.open(bad, 'id')).toThrow(SecretBoxError);
    }
  });

  it('refuses empty key material', () => {
    expect(() => new SecretBox('')).toThrow(SecretBoxError);
  });
});
