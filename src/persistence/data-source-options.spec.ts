import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { dataSourceOptions } from './data-source-options';

describe('dataSourceOptions (SQLite)', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-dso-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const mode = (p: string) => fs.statSync(p).mode & 0o777;

  it('creates the database file 0600, also inside an existing data dir open to others', () => {
    fs.chmodSync(dir, 0o755);
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      dataSourceOptions(`sqlite:${path.join(dir, 'cronium.db')}`);
      expect(mode(path.join(dir, 'cronium.db'))).toBe(0o600);
      expect(warn).toHaveBeenCalledWith(expect.stringMatching(/open to other users \(mode 755\)/));
    } finally {
      warn.mockRestore();
    }
  });

  it('tightens a database file left readable by others, and makes a new data dir 0700', () => {
    const sub = path.join(dir, 'data');
    const file = path.join(sub, 'cronium.db');
    dataSourceOptions(`sqlite:${file}`);
    expect(mode(sub)).toBe(0o700);
    fs.chmodSync(file, 0o644);
    dataSourceOptions(`sqlite:${file}`);
    expect(mode(file)).toBe(0o600);
  });
});
