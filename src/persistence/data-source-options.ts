import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataSourceOptions } from 'typeorm';
import { ENTITIES } from './entities';
import { Initial1763800000000 } from './migrations/1763800000000-initial';
import { Reattach1764600000000 } from './migrations/1764600000000-reattach';
import { DurableQueue1764700000000 } from './migrations/1764700000000-durable-queue';
import { Hardening1764800000000 } from './migrations/1764800000000-hardening';
import { TunnelSocket1764900000000 } from './migrations/1764900000000-tunnel-socket';
import { JumpHosts1765000000000 } from './migrations/1765000000000-jump-hosts';
import { Become1765100000000 } from './migrations/1765100000000-become';
import { FindAndRerun1765200000000 } from './migrations/1765200000000-find-and-rerun';
import { Batches1765300000000 } from './migrations/1765300000000-batches';
import { Notifications1765400000000 } from './migrations/1765400000000-notifications';

export const MIGRATIONS = [
  Initial1763800000000,
  Reattach1764600000000,
  DurableQueue1764700000000,
  Hardening1764800000000,
  TunnelSocket1764900000000,
  JumpHosts1765000000000,
  Become1765100000000,
  FindAndRerun1765200000000,
  Batches1765300000000,
  Notifications1765400000000,
];

/** `sqlite:<path>` (better-sqlite3, WAL) or `postgres://…`; migrations run on start-up. */
export function dataSourceOptions(url: string): DataSourceOptions {
  const common = {
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsRun: true,
    synchronize: false,
    logging: false,
  } as const;
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    return { ...common, type: 'postgres', url, extra: { max: 10 } };
  }
  const file = url.slice('sqlite:'.length);
  if (file !== ':memory:') privateFile(file);
  return {
    ...common,
    type: 'better-sqlite3',
    database: file,
    prepareDatabase: (db: any) => {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
    },
  };
}

/**
 * The SQLite file holds sealed credentials and jobs: its dir is made 0700 when new, the
 * file is created 0600 (SQLite gives its -wal and -shm files the same mode) and made so
 * if it exists with more.
 */
function privateFile(file: string): void {
  const abs = path.resolve(file);
  fs.mkdirSync(path.dirname(abs), { recursive: true, mode: 0o700 });
  fs.closeSync(fs.openSync(abs, 'a', 0o600));
  if ((fs.statSync(abs).mode & 0o077) !== 0) fs.chmodSync(abs, 0o600);
  const dirMode = fs.statSync(path.dirname(abs)).mode;
  if ((dirMode & 0o007) !== 0) {
    console.warn(
      `cronium-orchestrator: ${path.dirname(abs)} is open to other users (mode ${(dirMode & 0o777).toString(8)}); 0700 is advised`,
    );
  }
}
