import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseCollected } from '../runner/protocol';
import { bundledFiles, readBundledResults } from './bundled-files';

function collectAnswer(files: Record<string, string | Buffer>): Buffer {
  const parts: Buffer[] = [Buffer.from(`CRONIUM2 collect ${Object.keys(files).length}\n`)];
  for (const [name, data] of Object.entries(files)) {
    const b = Buffer.isBuffer(data) ? data : Buffer.from(data);
    parts.push(Buffer.from(`${name} ${b.length}\n`), b);
  }
  return Buffer.concat(parts);
}

describe('bundled-mode files', () => {
  const tricky = `it's "q" \\ $(touch /tmp/nope) \`x\`\nline2 ✓`;

  it('writes a variables.sh that bash sources into the exact raw values', () => {
    const files = bundledFiles({ userId: 'u' }, tricky, {
      [tricky]: tricky,
      n: { a: [1] },
      s: 'plain',
    });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-vars-'));
    fs.writeFileSync(path.join(dir, 'variables.sh'), files['variables.sh']);
    const out = execFileSync('bash', [
      '-c',
      `f() { . "$1"; }; f "$1"; printf '%s\\0' "$CRONIUM_INPUT_RAW" "\${CRONIUM_VARS[$2]}" "\${CRONIUM_VARS[n]}" "\${CRONIUM_VARS[s]}"`,
      'x',
      path.join(dir, 'variables.sh'),
      tricky,
    ]);
    expect(out.toString('utf8').split('\0').slice(0, 4)).toEqual([
      tricky,
      tricky,
      '{"a":[1]}',
      'plain',
    ]);
    expect(fs.existsSync('/tmp/nope')).toBe(false);
    expect(JSON.parse(files['input.json'])).toBe(tricky);
    expect(JSON.parse(files['variables.json'])).toEqual({
      [tricky]: tricky,
      n: { a: [1] },
      s: 'plain',
    });
  });

  it('parses collect answers, binary-safe, and applies writes in call order', () => {
    const answer = collectAnswer({
      'output.val': '{"a":1}',
      'output.type': 'auto',
      condition: 'true\n',
      'var.1.key': 'k',
      'var.1.val': 'first',
      'var.1.type': 'auto',
      'var.2.key': 'k',
      'var.2.val': '"second"',
      'var.2.type': 'json',
      'var.3.key': 'incomplete', // no .type: not counted
      'var.3.val': 'x',
      'var.10.key': 'ten',
      'var.10.val': '[1,2]',
      'var.10.type': 'auto',
      'bin.dat': Buffer.from([0, 10, 255, 10]),
    });
    const files = parseCollected(answer);
    expect(files.get('bin.dat')).toEqual(Buffer.from([0, 10, 255, 10]));
    const r = readBundledResults(files, 64);
    expect(r.output).toEqual({ set: true, value: { a: 1 } });
    expect(r.condition).toBe(true);
    expect(r.variables).toEqual([
      ['k', 'first'],
      ['k', 'second'],
      ['ten', [1, 2]],
    ]);
  });

  it('treats auto text that is not JSON as a string, and an empty collect as nothing set', () => {
    const r = readBundledResults(
      parseCollected(collectAnswer({ 'output.val': 'hello world', 'output.type': 'auto' })),
      64,
    );
    expect(r.output.value).toBe('hello world');
    const none = readBundledResults(parseCollected(Buffer.from('CRONIUM2 collect 0\n')), 64);
    expect(none).toEqual({
      output: { set: false, value: null },
      condition: null,
      variables: [],
      refused: [],
    });
    expect(() => parseCollected(Buffer.from('garbage\n'))).toThrow(/unexpected collect answer/);
  });

  it('refuses a record nested too deep, or not JSON, alone: the others are kept', () => {
    const deep = '['.repeat(5000) + ']'.repeat(5000);
    const r = readBundledResults(
      parseCollected(
        collectAnswer({
          'output.val': deep,
          'output.type': 'json',
          condition: 'true',
          'var.1.key': 'ok',
          'var.1.val': '{"a":[1]}',
          'var.1.type': 'json',
          'var.2.key': 'deep',
          'var.2.val': deep,
          'var.2.type': 'auto',
          'var.3.key': 'broken',
          'var.3.val': '{"a":',
          'var.3.type': 'json',
          'var.4.key': 'also-ok',
          'var.4.val': 'text',
          'var.4.type': 'auto',
        }),
      ),
      64,
    );
    expect(r.output).toEqual({ set: false, value: null });
    expect(r.condition).toBe(true);
    expect(r.variables).toEqual([
      ['ok', { a: [1] }],
      ['also-ok', 'text'],
    ]);
    expect(r.refused).toEqual([
      'output: the value is nested deeper than 64 levels',
      'setVariable "deep": the value is nested deeper than 64 levels',
      'setVariable "broken": not valid JSON',
    ]);
  });

  it('refuses what API mode refuses: bad keys, bytes that are not UTF-8, lone surrogates', () => {
    const r = readBundledResults(
      new Map<string, Buffer>([
        ['output.val', Buffer.from([0x22, 0xff, 0x22])],
        ['output.type', Buffer.from('auto')],
        ['var.1.key', Buffer.from('a\nb')],
        ['var.1.val', Buffer.from('1')],
        ['var.1.type', Buffer.from('auto')],
        ['var.2.key', Buffer.from('k'.repeat(201))],
        ['var.2.val', Buffer.from('1')],
        ['var.2.type', Buffer.from('auto')],
        ['var.3.key', Buffer.from([0x6b, 0xc3])],
        ['var.3.val', Buffer.from('1')],
        ['var.3.type', Buffer.from('auto')],
        ['var.4.key', Buffer.from('lone')],
        ['var.4.val', Buffer.from('"\\ud800"')],
        ['var.4.type', Buffer.from('json')],
        ['var.5.key', Buffer.from('fine')],
        ['var.5.val', Buffer.from('"\\ud83d\\ude00"')],
        ['var.5.type', Buffer.from('json')],
      ]),
      64,
    );
    expect(r.output).toEqual({ set: false, value: null });
    expect(r.variables).toEqual([['fine', '😀']]);
    expect(r.refused).toEqual([
      'output: not valid UTF-8',
      'setVariable "a\\nb": the key must be 1-200 bytes without control characters',
      `setVariable "${'k'.repeat(100)}": the key must be 1-200 bytes without control characters`,
      'setVariable "k\ufffd": not valid UTF-8',
      'setVariable "lone": the value holds a lone UTF-16 surrogate (not a character)',
    ]);
  });
});
