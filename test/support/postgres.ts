import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

export const PG_URL = process.env.CRONIUM_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** True when the PostgreSQL server the spec names (127.0.0.1:5432, db `test`) answers. */
export async function postgresReachable(): Promise<boolean> {
  const c = new Client({ connectionString: PG_URL, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/**
 * The same check, synchronously, for deciding at collection time whether the PostgreSQL
 * suites are registered at all.
 */
export function postgresReachableSync(): boolean {
  const probe = `require('pg');const c=new (require('pg').Client)({connectionString:process.argv[1],connectionTimeoutMillis:2000});c.connect().then(()=>c.query('select 1')).then(()=>process.exit(0),()=>process.exit(1))`;
  const r = spawnSync(process.execPath, ['-e', probe, PG_URL], { timeout: 5000, cwd: __dirname });
  return r.status === 0;
}

/** A fresh schema per test file, so runs never see each other's rows; dropped by `drop()`. */
export async function freshSchema(): Promise<{ url: string; drop: () => Promise<void> }> {
  const schema = 'cronium_test_' + randomBytes(6).toString('hex');
  const c = new Client({ connectionString: PG_URL });
  await c.connect();
  await c.query(`CREATE SCHEMA ${schema}`);
  await c.end();
  const sep = PG_URL.includes('?') ? '&' : '?';
  return {
    url: `${PG_URL}${sep}options=${encodeURIComponent(`-c search_path=${schema}`)}`,
    drop: async () => {
      const d = new Client({ connectionString: PG_URL });
      await d.connect();
      await d.query(`DROP SCHEMA ${schema} CASCADE`);
      await d.end();
    },
  };
}
