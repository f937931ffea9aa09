import { Module, RequestMethod } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import { AppConfig } from '../config/app-config';

/** Paths never written to logs, whatever a caller or script sends. */
export const REDACT = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["idempotency-key"]',
  'res.headers["set-cookie"]',
  '*.privateKey',
  '*.password',
  '*.passphrase',
  '*.token',
  '*.env',
];

/** `token` query parameters in a serialized request (its url and query) become [redacted]. */
export function redactTokenParams<T extends { url?: string; query?: Record<string, unknown> }>(
  req: T,
): T {
  if (typeof req.url === 'string' && /[?&]token=/i.test(req.url)) {
    req.url = req.url.replace(/([?&]token=)[^&#]*/gi, '$1[redacted]');
  }
  if (req.query && typeof req.query === 'object') {
    for (const k of Object.keys(req.query)) {
      if (k.toLowerCase() === 'token') req.query = { ...req.query, [k]: '[redacted]' };
    }
  }
  return req;
}

/** Structured logs: pino JSON in production, pretty in development, quiet in tests. */
@Module({
  imports: [
    LoggerModule.forRootAsync({
      inject: [AppConfig],
      useFactory: (config: AppConfig) => ({
        // Named wildcard: the path-to-regexp of Nest 11 no longer takes a bare '*'.
        forRoutes: [{ path: '{*path}', method: RequestMethod.ALL }],
        pinoHttp: {
          level: config.logLevel || (config.nodeEnv === 'test' ? 'warn' : 'info'),
          // Every line says which replica wrote it.
          base: { pid: process.pid, replicaId: config.replicaId },
          redact: { paths: REDACT, censor: '[redacted]' },
          // A token may also come as ?token= (websocket clients): never in the clear.
          serializers: { req: redactTokenParams },
          // Probes and scrapes every few seconds are noise.
          autoLogging: { ignore: (req) => /^\/(health|metrics)/.test(req.url ?? '') },
          transport:
            config.nodeEnv === 'development'
              ? {
                  target: 'pino-pretty',
                  options: { singleLine: true, translateTime: 'SYS:HH:MM:ss.l' },
                }
              : undefined,
        },
      }),
    }),
  ],
})
export class LoggingModule {}
