import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { sh } from '../../test/support/sshd';
import {
  collectCommand,
  deployCommand,
  runCommand,
  runnerScriptPath,
  shellPath,
  verifyCommand,
} from './commands';
import { shellQuote } from './protocol';

describe('remote housekeeping', () => {
  it('re-verifying a runner also removes run dirs and deploy temp dirs older than two days', () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-janitor-'));
    const hash = 'b'.repeat(64);
    const mk = (rel: string, daysOld: number) => {
      const p = path.join(base, rel);
      fs.mkdirSync(p, { recursive: true });
      const t = new Date(Date.now() - daysOld * 86400_000);
      fs.utimesSync(p, t, t);
    };
    mk(`runners/${hash}`, 10); // a deployed runner: kept however old
    mk('runners/.deploy-old', 3);
    mk('runners/.deploy-fresh', 0);
    mk('runs/stale-run', 3);
    mk('runs/long-running-job', 1.5); // within the longest allowed timeout: kept
    mk('runs/fresh-run', 0);
    try {
      execFileSync('/bin/sh', ['-c', verifyCommand(base, hash)]);
    } catch {
      /* no SHA256SUMS here: verification fails, the janitor has run anyway */
    }
    expect(fs.readdirSync(path.join(base, 'runners')).sort()).toEqual(['.deploy-fresh', hash]);
    expect(fs.readdirSync(path.join(base, 'runs')).sort()).toEqual([
      'fresh-run',
      'long-running-job',
    ]);
    fs.rmSync(base, { recursive: true, force: true });
  });
});

describe('remote commands', () => {
  const HASH = 'ab'.repeat(32);

  it.each([
    '~/a;rm -rf /',
    '../x',
    '/a/../b',
    '$(x)',
    '~/../etc',
    '/a/./b',
    'relative/dir',
    '',
    '/a b',
    "/a'b",
    '~root',
    '/a/`id`',
    '/a\nb',
  ])('shellPath rejects %j', (bad) => {
    expect(() => shellPath(bad)).toThrow(/unsafe baseDir/);
  });

  it.each([
    ['~', '"$HOME"'],
    ['~/', '"$HOME"'],
    ['~/.cache/cronium', `"$HOME"/'.cache/cronium'`],
    ['/opt/x', `'/opt/x'`],
    ['/opt/x/', `'/opt/x'`],
    ['/', `'/'`],
  ])('shellPath accepts %j', (good, expected) => {
    expect(shellPath(good)).toBe(expected);
  });

  it('shellPath rejects unsafe extra parts', () => {
    expect(shellPath('/opt/x', 'runners', HASH)).toBe(`'/opt/x/runners/${HASH}'`);
    for (const bad of ['..', '.', 'a/b', 'a b', '$(id)', '']) {
      expect(() => shellPath('/opt/x', bad)).toThrow(/unsafe path part/);
    }
  });

  it('the generated words expand to the intended path under a real shell', async () => {
    const cases: [string, string][] = [
      ['~', '/home/u x'],
      ['~/.cache/cronium', '/home/u x/.cache/cronium'],
      ['/opt/x', '/opt/x'],
    ];
    for (const [base, expected] of cases) {
      const word = shellPath(base, 'runners', HASH, 'runner.sh');
      const r = await sh(`HOME='/home/u x'; printf '%s|' ${word}`);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`${expected}/runners/${HASH}/runner.sh|`);
    }
  });

  it('runCommand and collectCommand end in one exec of the runner path, after the guard', async () => {
    const cmd = runCommand('~/.cache/cronium', HASH);
    const exec = (c: string) => c.slice(c.lastIndexOf('; exec sh ') + 2);
    expect(exec(cmd)).toBe(`exec sh "$HOME"/'.cache/cronium/runners/${HASH}/runner.sh' run`);
    expect(exec(runCommand('/opt/x', HASH))).toBe(`exec sh '/opt/x/runners/${HASH}/runner.sh' run`);
    // The guard before it names only the base dir and the hash.
    expect(cmd.slice(0, -exec(cmd).length)).toMatch(/^B="\$HOME"\/'\.cache\/cronium'; /);
    // replace `exec sh` with a printer: the shell must see exactly three words
    const r = await sh(
      `HOME=/h; set -- ${exec(cmd).replace(/^exec sh /, '')}; echo "$#"; printf '%s\\n' "$@"`,
    );
    expect(r.stdout).toBe(`2\n/h/.cache/cronium/runners/${HASH}/runner.sh\nrun\n`);
    expect(exec(collectCommand('/opt/x', HASH, 'run-123'))).toBe(
      `exec sh '/opt/x/runners/${HASH}/runner.sh' collect run-123`,
    );
    expect(() => collectCommand('/opt/x', HASH, 'a;b')).toThrow(/bad run id/);
    expect(() => collectCommand('/opt/x', HASH, '')).toThrow(/bad run id/);
    expect(runnerScriptPath('/opt/x', HASH)).toBe(`'/opt/x/runners/${HASH}/runner.sh'`);
  });

  it('shellQuote round-trips awkward strings through sh', async () => {
    const s = `it's "quoted" $HOME \`id\` ; \\ end`;
    const r = await sh(`printf '%s' ${shellQuote(s)}`);
    expect(r.stdout).toBe(s);
  });

  it.each([
    'G'.repeat(64),
    'AB'.repeat(32),
    'ab'.repeat(31),
    'ab'.repeat(33),
    `${'a'.repeat(60)};id;`,
    '$(id)',
  ])('deploy/run/verify commands reject the non-hex hash %j', (bad) => {
    expect(() => deployCommand('/opt/x', bad)).toThrow(/bad runner hash/);
    expect(() => runCommand('/opt/x', bad)).toThrow(/bad runner hash/);
    expect(() => verifyCommand('/opt/x', bad)).toThrow(/bad runner hash/);
    expect(() => collectCommand('/opt/x', bad, 'r1')).toThrow(/bad runner hash/);
  });

  it('deployCommand and verifyCommand reject an unsafe baseDir', () => {
    expect(() => deployCommand('~/a;rm -rf /', HASH)).toThrow(/unsafe baseDir/);
    expect(() => verifyCommand('../x', HASH)).toThrow(/unsafe baseDir/);
  });

  it('deployCommand is valid sh', async () => {
    const file = path.join(os.tmpdir(), `cronium-deploy-${process.pid}.sh`);
    fs.writeFileSync(file, deployCommand('~/.cache/cronium', HASH));
    try {
      const r = await sh(`sh -n '${file}'`);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    } finally {
      fs.rmSync(file, { force: true });
    }
  });
});
