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
