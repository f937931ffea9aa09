/**
 * A PostgreSQL server of the test's own (initdb in a temp dir, run as the `postgres`
 * user, trust auth, a free port on 127.0.0.1), for the tests that stop and start it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from './sshd';

export interface PrivatePostgres {
  url: string;
  /** Fast shutdown (`-m immediate`: like a crash; connections are cut). */
  stop(): void;
  start(): void;
  /** Stops it and removes its data dir. */
  destroy(): void;
}

function binDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root) ? fs.readdirSync(root).sort() : [];
  const found = versions.reverse().find((v) => fs.existsSync(path.join(root, v, 'bin/pg_ctl')));
  if (!found) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql');
  return path.join(root, found, 'bin');
}

const asPostgres = (args: string[]) =>
  execFileSync('runuser', ['-u', 'postgres', '--', ...args], { stdio: 'pipe', timeout: 60_000 });

export async function privatePostgres(): Promise<PrivatePostgres> {
  const bin = binDir();
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-pg-'));
  fs.chmodSync(dir, 0o755);
  const data = path.join(dir, 'data');
  const sock = path.join(dir, 'sock');
  fs.mkdirSync(sock);
  execFileSync('chown', ['-R', 'postgres:postgres', dir]);
  asPostgres([path.join(bin, 'initdb'), '-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  const pgctl = (...args: string[]) => asPostgres([path.join(bin, 'pg_ctl'), '-D', data, ...args]);
  const start = () =>
    void pgctl(
      '-w',
      '-l',
      path.join(dir, 'log'),
      '-o',
      `-p ${port} -k ${sock} -c listen_addresses=127.0.0.1 -c fsync=off`,
      'start',
    );
  const stop = () => void pgctl('-w', '-m', 'immediate', 'stop');
  start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    start,
    stop,
    destroy: () => {
      spawnSync('runuser', [
        '-u',
        'postgres',
        '--',
        path.join(bin, 'pg_ctl'),
        '-D',
        data,
        '-m',
        'immediate',
        'stop',
      ]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
