import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { verifyCommand } from './remote-commands';

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
