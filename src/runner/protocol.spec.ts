import { INLINE_COLLECT_MAX, mayBeTrailer, parseCollected, parseTrailer } from './protocol';

describe('the trailer', () => {
  const b = (s: string) => Buffer.from(s, 'latin1');

  it('parses a plain trailer and one that carries bundled results', () => {
    expect(parseTrailer(b('\nCRONIUM2 exit 3 timeout\n'))).toEqual({
      exitCode: 3,
      reason: 'timeout',
      collected: null,
    });
    const frame = Buffer.from('CRONIUM2 collect 1\nvar.1 2\n{}');
    const t = parseTrailer(b(`\nCRONIUM2 exit 0 exit ${frame.toString('base64')}\n`));
    expect(t?.collected).toEqual(frame);
    expect([...parseCollected(t!.collected!).keys()]).toEqual(['var.1']);
  });

  it('refuses what is not exactly a trailer', () => {
    for (const s of [
      'CRONIUM2 exit 0 exit',
      'CRONIUM2 exit 0 bogus\n',
      'CRONIUM2 exit 0 exit not*base64\n',
      'CRONIUM2 exit 0 exit AAAA\nmore\n',
      'xCRONIUM2 exit 0 exit\n',
    ]) {
      expect(parseTrailer(b(s))).toBeNull();
    }
  });

  it('holds back a line that may grow into one, up to the largest inline answer', () => {
    expect(mayBeTrailer(b('CRONIUM2 ex'))).toBe(true);
    expect(mayBeTrailer(b('CRONIUM2 exit 0 exit QUJD'))).toBe(true);
    expect(mayBeTrailer(b('CRONIUM2 exit 0 exit QUJD\n'))).toBe(true);
    expect(mayBeTrailer(b('CRONIUM2 exit 0 exit QU JD'))).toBe(false);
    expect(mayBeTrailer(b('hello'))).toBe(false);
    const longest = Math.ceil(INLINE_COLLECT_MAX / 3) * 4;
    expect(mayBeTrailer(b(`CRONIUM2 exit 0 exit ${'A'.repeat(longest)}`))).toBe(true);
    expect(mayBeTrailer(b(`CRONIUM2 exit 0 exit ${'A'.repeat(longest + 64)}`))).toBe(false);
  });
});
