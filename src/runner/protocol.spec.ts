import {
  buildRunPayload,
  INLINE_COLLECT_MAX,
  isRunnerGone,
  mayBeTrailer,
  parseCollected,
  parseStandbyLine,
  parseTrailer,
  TEXT_SECTION_MAX,
} from './protocol';

describe('the trailer', () => {
  const b = (s: string) => Buffer.from(s, 'latin1');

  it('parses a plain trailer and one that carries bundled results', () => {
    expect(parseTrailer(b('\nCRONIUM2 exit 3 timeout\n'))).toEqual({
      exitCode: 3,
      reason: 'timeout',
      collected: null,
    });
    expect(parseTrailer(b('\nCRONIUM2 exit 1 become\n'))?.reason).toBe('become');
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

describe('the run payload', () => {
  const base = {
    runId: 'r1',
    scriptType: 'bash' as const,
    graceSeconds: 1,
    timeoutSeconds: 60,
    leaseSeconds: 30,
    env: { A: 'x' },
  };

  it('sends small sections without a NUL byte as text, their last line always ending in a newline', () => {
    const p = buildRunPayload({
      ...base,
      script: 'echo ok',
      files: { 'a.json': '{}\n', 'bin.dat': Buffer.from('a\0b'), 'big.txt': 'x'.repeat(3000) },
      keep: true,
    }).toString('latin1');
    expect(p).toContain(`env 13 text\nexport A='x'\n`);
    expect(p).toContain('a.json 3 text\n{}\n'); // ends in a newline: nothing added
    expect(p).toContain('bin.dat 3\na\0b'); // a NUL byte: raw
    expect(p).toContain(`big.txt ${3000}\n${'x'.repeat(3000)}`); // too big: raw
    expect(p).toContain('keep 0\n');
    expect(p.endsWith('script 7 text\necho ok\n')).toBe(true); // the newline is not counted
    expect(p.startsWith('CRONIUM2 r1 bash 1 60 30 6\n')).toBe(true);
  });

  it('sends become as `<user>\\n[<password>\\n]`, refusing a user or password that could break out', () => {
    const p = (become: { user: string; password?: string }) =>
      buildRunPayload({ ...base, script: 'id', become }).toString('latin1');
    expect(p({ user: 'deploy' })).toContain('become 7 text\ndeploy\n');
    expect(p({ user: 'root', password: "p w'$(x)" })).toContain("become 14 text\nroot\np w'$(x)\n");
    for (const user of ['', 'Root', 'a b', 'a;b', '-u', 'x'.repeat(33), 'root\n'])
      expect(() => p({ user })).toThrow('bad become user');
    for (const password of ['a\nb', 'a\rb', 'a\0b'])
      expect(() => p({ user: 'root', password })).toThrow('bad become password');
  });

  it(`keeps sections of ${TEXT_SECTION_MAX} bytes text, and not one byte more`, () => {
    const at = buildRunPayload({ ...base, script: 'x'.repeat(TEXT_SECTION_MAX) });
    expect(at.toString('latin1')).toContain(`script ${TEXT_SECTION_MAX} text\n`);
    const over = buildRunPayload({ ...base, script: 'x'.repeat(TEXT_SECTION_MAX + 1) });
    expect(over.toString('latin1')).toContain(`script ${TEXT_SECTION_MAX + 1}\n`);
  });
});

describe('the standby word', () => {
  it('is `CRONIUM2 standby <version>`', () => {
    expect(parseStandbyLine('CRONIUM2 standby 2.1.0')).toBe('2.1.0');
    expect(parseStandbyLine('CRONIUM2 standby')).toBeNull();
    expect(parseStandbyLine('CRONIUM2 ready 2.1.0 Linux x86_64')).toBeNull();
  });
});

describe('a runner whose files went away under its standby', () => {
  it('says `runner missing: <path>`, which the service redeploys for; nothing else is that', () => {
    expect(isRunnerGone('runner missing: /srv/cronium/runs')).toBe(true);
    expect(isRunnerGone('unsafe path (owned by another user): /srv/cronium/runs')).toBe(false);
    expect(isRunnerGone('interpreter missing: python3')).toBe(false);
    expect(isRunnerGone(null)).toBe(false);
  });
});
