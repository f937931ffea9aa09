import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Logger as PinoLogger } from 'nestjs-pino';
import { AppModule } from './app.module';
import { configureApp } from './app-setup';
import { AppConfig } from './config/app-config';
import { ConfigError, loadConfig } from './config/load-config';
import { ShutdownService } from './health/shutdown.service';
import { DatabaseInUseError, lockSqliteDatabase } from './persistence/sqlite-lock';
import { checkRedis, RedisUnavailableError } from './queue/redis';

async function bootstrap(): Promise<void> {
  // Fail fast with one clear line (naming the key) before Nest starts anything.
  const { database, queue } = loadConfig();
  // One process per SQLite file: a second one is refused before it touches anything.
  lockSqliteDatabase(database.url);
  if (queue.redisUrl) await checkRedis(queue.redisUrl, queue.connectTimeoutMs);
  const app = await NestFactory.create(AppModule, { bufferLogs: true });
  app.useLogger(app.get(PinoLogger));
  configureApp(app);
  app.get(ShutdownService).listen(app);
  const config = app.get(AppConfig);
  const logger = new Logger('Main');

  try {
    await app.listen(config.port, config.host);
  } catch (e) {
    throw listenError(e, config.host, config.port);
  }
  const queueKind = config.queue.redisUrl ? 'BullMQ on Redis' : 'in-process';
  logger.log(
    `listening on ${config.host}:${config.port} (database ${config.database.url.split(':')[0]}, queue ${queueKind}, replica ${config.replicaId})`,
  );
}

/** The address cannot be listened on: a configuration problem (HOST, PORT), not a crash. */
class ListenError extends Error {}

const LISTEN_CODES: Record<string, string> = {
  EADDRNOTAVAIL: 'the address is not one of this machine (HOST)',
  EADDRINUSE: 'the port is in use (PORT)',
  EACCES: 'not allowed to listen on this port (PORT)',
  ENOTFOUND: 'the host name does not resolve (HOST)',
  EAI_AGAIN: 'the host name does not resolve (HOST)',
};

function listenError(e: unknown, host: string, port: number): unknown {
  const code = (e as NodeJS.ErrnoException)?.code ?? '';
  const why = LISTEN_CODES[code];
  return why ? new ListenError(`cannot listen on ${host}:${port}: ${why} (${code})`) : e;
}

bootstrap().catch((e) => {
  if (
    e instanceof ConfigError ||
    e instanceof ListenError ||
    e instanceof DatabaseInUseError ||
    e instanceof RedisUnavailableError
  ) {
    console.error(`cronium-orchestrator: ${e.message}`);
    process.exit(78);
  }
  console.error(e);
  process.exit(1);
});
