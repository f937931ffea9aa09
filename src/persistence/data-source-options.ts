import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataSourceOptions } from 'typeorm';
import { ENTITIES } from './entities';
import { Initial1763800000000 } from './migrations/1763800000000-initial';
import { Reattach1764600000000 } from './migrations/1764600000000-reattach';
import { DurableQueue1764700000000 } from './migrations/1764700000000-durable-queue';

export const MIGRATIONS = [Initial1763800000000, Reattach1764600000000, DurableQueue1764700000000];

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
  if (file !== ':memory:') fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
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
