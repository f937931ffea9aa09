import Redis, { RedisOptions } from 'ioredis';
import { withTimeout } from '../common/with-timeout';

/** Redis could not be reached at boot (exit 78, like any configuration error). */
export class RedisUnavailableError extends Error {}

/** The URL without its password, for messages. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparsable URL>';
  }
}

/**
 * A connection for BullMQ and the cluster bus. Commands wait through an outage (no retry
 * limit, offline queue kept), so events published while Redis is away go out, in order,
 * once it is back.
 */
export function redisConnection(url: string, extra: RedisOptions = {}): Redis {
  const client = new Redis(url, {
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy: (attempt) => Math.min(200 * attempt, 2000),
    ...extra,
  });
  // Outages show on /health/ready and in BullMQ's own warnings; ioredis would also print
  // an "unhandled error event" line per reconnect attempt.
  client.on('error', () => undefined);
  return client;
}

/** Connects once, without retrying, and pings: the boot check behind exit 78. */
export async function checkRedis(url: string, timeoutMs: number): Promise<void> {
  let client: Redis;
  try {
    client = new Redis(url, {
      lazyConnect: true,
      connectTimeout: timeoutMs,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      enableOfflineQueue: false,
    });
  } catch (e: any) {
    throw new RedisUnavailableError(`REDIS_URL=${redactedUrl(url)} is not usable: ${e?.message}`);
  }
  client.on('error', () => undefined);
  try {
    await withTimeout(
      client.connect().then(() => client.ping()),
      timeoutMs,
    );
  } catch (e: any) {
    throw new RedisUnavailableError(
      `cannot reach Redis at REDIS_URL=${redactedUrl(url)}: ${e?.message ?? e}`,
    );
  } finally {
    client.disconnect();
  }
}
