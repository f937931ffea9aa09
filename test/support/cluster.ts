/**
 * Several real service processes sharing one PostgreSQL database and one Redis: a fresh
 * database per run (dropped afterwards) and a fresh Redis key prefix (its keys deleted
 * afterwards). Also a private redis-server on a free port, for the tests that stop it.
 * Compiled for the benches too (tsconfig.scripts.json): nothing here may depend on jest.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Redis from 'ioredis';
import { Client } from 'pg';
import { PG_URL } from './postgres';
import { ServiceProcess, startServiceProcess } from './service-process';
import { freePort } from './sshd';

export const REDIS_URL = process.env.CRONIUM_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** True when the Redis the spec names (127.0.0.1:6379) answers a PING. */
export async function redisReachable(url = REDIS_URL): Promise<boolean> {
  const c = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return (await c.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    c.disconnect();
  }
}

/** A new database on the test PostgreSQL server; `drop()` removes it (closing connections). */
export async function freshDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = 'cronium_cluster_' + randomBytes(6).toString('hex');
  const admin = async (sql: string) => {
    const c = new Client({ connectionString: PG_URL });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const u = new URL(PG_URL);
  u.pathname = `/${name}`;
  return { url: u.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

/** Deletes every key under `prefix` (the cluster's BullMQ queue and anything else it made). */
export async function flushPrefix(url: string, prefix: string): Promise<void> {
  const c = new Redis(url, { maxRetriesPerRequest: 1 });
  c.on('error', () => undefined);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await c.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await c.del(...keys);
    } while (cursor !== '0');
  } finally {
    c.disconnect();
  }
}

export interface ClusterOptions {
  replicas: number;
  /** Default: the shared Redis on 127.0.0.1:6379. */
  redisUrl?: string;
  /** Extra environment for every replica. */
  env?: Record<string, string>;
  /** Default 'ignore'; 'inherit' shows the replicas' logs. */
  stdio?: 'ignore' | 'inherit';
}

export interface Cluster {
  replicas: ServiceProcess[];
  /** `replica-<i>` for replicas[i]. */
  idOf(svc: ServiceProcess): string;
  byId(replicaId: string): ServiceProcess | undefined;
  databaseUrl: string;
  redisUrl: string;
  prefix: string;
  /** Starts one more replica (same database, Redis and secrets); `replica-<n>`. */
  add(extraEnv?: Record<string, string>): Promise<ServiceProcess>;
  /** Stops every replica (SIGKILL), drops the database, deletes the Redis keys. */
  stop(): Promise<void>;
}

/**
 * Fast take-over timings for tests: a dead replica's job lock expires after 3 s and the
 * stalled check runs every second; its ownership goes stale after 4 s.
 */
export const FAST_TAKEOVER: Record<string, string> = {
  CRONIUM__QUEUE__LOCK_DURATION_MS: '3000',
  CRONIUM__QUEUE__STALLED_INTERVAL_MS: '1000',
  CRONIUM__QUEUE__RETRY_DELAY_MS: '300',
  CRONIUM__EXECUTOR__OWNER_HEARTBEAT_SECONDS: '1',
  CRONIUM__EXECUTOR__OWNER_STALE_SECONDS: '4',
};

export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const db = await freshDatabase();
  const redisUrl = o.redisUrl ?? REDIS_URL;
  const prefix = 'cronium-test-' + randomBytes(4).toString('hex');
  const token = 'svc-' + randomBytes(12).toString('hex');
  const shared: Record<string, string> = {
    NODE_ENV: 'test',
    DATABASE_URL: db.url,
    REDIS_URL: redisUrl,
    CRONIUM__QUEUE__PREFIX: prefix,
    CRONIUM_SECRETS_KEY: randomBytes(32).toString('hex'),
    CRONIUM_JWT_SECRET: randomBytes(32).toString('hex'),
    ...FAST_TAKEOVER,
    ...o.env,
  };
  const replicas: ServiceProcess[] = [];
  const ids = new Map<ServiceProcess, string>();
  const add = async (extraEnv: Record<string, string> = {}) => {
    const id = `replica-${replicas.length}`;
    const svc = await startServiceProcess({
      token,
      env: { ...shared, CRONIUM_REPLICA_ID: id, ...extraEnv },
      stdio: o.stdio ?? 'ignore',
    });
    replicas.push(svc);
    ids.set(svc, id);
    await svc.waitReady();
    return svc;
  };
  try {
    // One at a time: the first one runs the migrations.
    for (let i = 0; i < o.replicas; i++) await add();
  } catch (e) {
    await Promise.all(replicas.map((r) => r.stop('SIGKILL')));
    await db.drop().catch(() => undefined);
    throw e;
  }
  return {
    replicas,
    idOf: (svc) => ids.get(svc) ?? '?',
    byId: (id) => replicas.find((r) => ids.get(r) === id),
    databaseUrl: db.url,
    redisUrl,
    prefix,
    add,
    stop: async () => {
      await Promise.all(replicas.map((r) => r.stop('SIGKILL')));
      await db.drop().catch(() => undefined);
      await flushPrefix(redisUrl, prefix).catch(() => undefined);
    },
  };
}

/** A private redis-server (no persistence) that a test may stop and start again. */
export interface PrivateRedis {
  port: number;
  url: string;
  start(): Promise<void>;
  /** SIGKILL: everything in it is lost, as on a crash without persistence. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

export async function privateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-redis-'));
  let child: ChildProcess | null = null;
  const url = `redis://127.0.0.1:${port}`;
  const start = async () => {
    child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
      ],
      { stdio: 'ignore' },
    );
    for (let i = 0; !(await redisReachable(url)); i++) {
      if (i > 100) throw new Error('private redis-server did not start');
      await sleep(50);
    }
  };
  const kill = async () => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await gone;
  };
  await start();
  return {
    port,
    url,
    start,
    kill,
    stop: async () => {
      await kill();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
