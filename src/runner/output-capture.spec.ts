import { OutputCapture } from './output-capture';

function capture(cap = 1024, maxLine = 16) {
  const lines: string[] = [];
  const truncations: number[] = [];
  const c = new OutputCapture(
    { capBytes: cap, maxLineBytes: maxLine },
    (l) => lines.push(l),
    (n) => truncations.push(n),
  );
  return { c, lines, truncations };
}

describe('OutputCapture', () => {
  it('splits lines across chunk boundaries and keeps a final partial line', () => {
    const { c, lines } = capture();
    c.write(Buffer.from('hel'));
    c.write(Buffer.from('lo\nwor'));
    c.write(Buffer.from('ld\r\n\nlast'));
    c.flush();
    expect(lines).toEqual(['hello', 'world', '', 'last']);
  });

  it('cuts long lines at character boundaries without splitting UTF-8', () => {
    const { c, lines } = capture(1024, 5);
    c.write(Buffer.from('ééé\n')); // 6 bytes: 2+2+2
    expect(lines).toEqual(['éé', 'é']);
    expect(lines.every((l) => !l.includes('\uFFFD'))).toBe(true);
  });

  it('keeps a multi-byte character split across chunks intact', () => {
    const { c, lines } = capture();
    const b = Buffer.from('€\n');
    c.write(b.subarray(0, 1));
    c.write(b.subarray(1));
    expect(lines).toEqual(['€']);
  });

  it('drops output past the cap and reports truncation once', () => {
    const { c, lines, truncations } = capture(10, 100);
    c.write(Buffer.from('12345\n'));
    c.write(Buffer.from('67890abc\n'));
    c.write(Buffer.from('more\n'));
    expect(lines).toEqual(['12345', '6789']);
    expect(truncations).toEqual([10]);
    expect(c.truncated).toBe(true);
  });

  it('survives binary output: NUL and invalid bytes become U+FFFD', () => {
    const { c, lines } = capture();
    c.write(Buffer.from([0x61, 0x00, 0xff, 0x62, 0x0a]));
    expect(lines).toEqual(['a\uFFFD\uFFFDb']);
  });
});

describe('OutputCapture offsets', () => {
  it('gives each entry the stream offset just past it, newline included, from a start offset', () => {
    const seen: [string, number][] = [];
    const c = new OutputCapture(
      { capBytes: 1024, maxLineBytes: 4 },
      (l, end) => seen.push([l, end]),
      () => undefined,
      100,
    );
    c.write(Buffer.from('ab\ncdefgh'));
    c.write(Buffer.from('\r\nxy'));
    c.flush();
    expect(seen).toEqual([
      ['ab', 103],
      ['cdef', 107],
      ['gh', 111],
      ['xy', 113],
    ]);
    expect(c.position).toBe(113);
  });

  it('keeps counting offsets past the cap, so a resume never re-reads dropped bytes', () => {
    const seen: [string, number][] = [];
    const c = new OutputCapture(
      { capBytes: 4, maxLineBytes: 64 },
      (l, end) => seen.push([l, end]),
      () => undefined,
    );
    c.write(Buffer.from('abc\ndefgh\n'));
    c.write(Buffer.from('more\n'));
    expect(seen).toEqual([['abc', 4]]);
    expect(c.position).toBe(15);
  });
});

describe('OutputCapture after an idle flush', () => {
  it('the newline that ends a flushed partial line adds no empty entry; a real empty line still does', () => {
    const { c, lines } = capture();
    c.write(Buffer.from('abc'));
    c.flush(); // quiet for a while: the partial line goes out
    c.write(Buffer.from('\n\nnext\n'));
    expect(lines).toEqual(['abc', '', 'next']);
  });
});
