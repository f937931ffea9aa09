import { Module, RequestMethod } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { LoggerModule } from 'nestjs-pino';
import pino from 'pino';
import { pinoHttp, type HttpLogger } from 'pino-http';
import { storage } from 'nestjs-pino/storage';
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

/** A caller's X-Request-Id is kept when it is this: bounded, and safe in a header and a log. */
const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

/** The caller's X-Request-Id when it is sane, else a new UUID. */
export function requestIdFor(given: unknown): string {
  return typeof given === 'string' && REQUEST_ID_RE.test(given) ? given : randomUUID();
}

/** pino-http's genReqId: the request's id, also sent back as X-Request-Id on the response. */
export function assignRequestId(req: IncomingMessage, res: ServerResponse): string {
  const id = requestIdFor(req.headers['x-request-id']);
  res.setHeader('X-Request-Id', id);
  return id;
}

/** A caller's mistake (4xx) is info; only a fault of the service (5xx) is an error. */
export function responseLevel(res: ServerResponse, err?: Error): 'info' | 'error' {
  return err || res.statusCode >= 500 ? 'error' : 'info';
}

/**
 * Runs `fn` outside the logging context of the HTTP request it was called from: work a
 * request starts but does not wait for (an execution) must not log as that request.
 */
export function detachedFromRequest<T>(fn: () => T): T {
  return storage.exit(fn);
}

/** JSON unless LOG_FORMAT says otherwise; unset, pretty on a terminal (never under jest). */
export function logFormat(config: Pick<AppConfig, 'logFormat' | 'nodeEnv'>, tty: boolean) {
  if (config.logFormat) return config.logFormat;
  return tty && config.nodeEnv !== 'test' ? 'pretty' : 'json';
}

/** The pino-http middleware of the app, mounted first by configureApp (see httpLogger). */
export const HTTP_LOGGER = Symbol('HTTP_LOGGER');
export type { HttpLogger };

/**
 * One pino logger for everything the process writes, and the pino-http middleware on it.
 * The middleware goes in front of body parsing (configureApp), so a body refused there
 * still gets its X-Request-Id and its log line; nestjs-pino (useExisting) then only binds
 * the request's logger for the lines written while Nest handles it.
 */
export function httpLogger(config: AppConfig): HttpLogger {
  const pretty = logFormat(config, process.stdout.isTTY === true) === 'pretty';
  const options: pino.LoggerOptions = {
    level: config.logLevel || (config.nodeEnv === 'test' ? 'warn' : 'info'),
    // Every line says which replica wrote it.
    base: { pid: process.pid, replicaId: config.replicaId },
    redact: { paths: REDACT, censor: '[redacted]' },
  };
  const root = pretty
    ? pino({
        ...options,
        transport: {
          target: 'pino-pretty',
          options: { singleLine: true, translateTime: 'SYS:HH:MM:ss.l' },
        },
      })
    : // JSON lines written as they are logged, by the logging thread itself: pino's default
      // destination writes through libuv's thread pool, and waking a pool thread for each
      // line cost the event loop ~0.3 ms a line on a busy 2-CPU host (bench/README.md).
      pino(options, pino.destination({ dest: process.stdout.fd, sync: true }));
  return pinoHttp({
    logger: root,
    // A token may also come as ?token= (websocket clients): never in the clear.
    serializers: { req: redactTokenParams },
    genReqId: assignRequestId,
    // Lines logged while a request is handled carry its requestId; only the line for the
    // response carries the whole req and res.
    quietReqLogger: true,
    customAttributeKeys: { reqId: 'requestId' },
    customLogLevel: (_req, res, err) => responseLevel(res, err),
    // Probes and scrapes every few seconds are noise.
    autoLogging: { ignore: (req) => /^\/(health|metrics)/.test(req.url ?? '') },
  });
}

/** Structured logs: pino JSON (or pretty, LOG_FORMAT), one request id per request. */
@Module({
  imports: [
    LoggerModule.forRootAsync({
      providers: [{ provide: HTTP_LOGGER, inject: [AppConfig], useFactory: httpLogger }],
      inject: [HTTP_LOGGER],
      useFactory: (http: HttpLogger) => ({
        // Named wildcard: the path-to-regexp of Nest 11 no longer takes a bare '*'.
        forRoutes: [{ path: '{*path}', method: RequestMethod.ALL }],
        // Lines outside any request go to the same logger.
        pinoHttp: { logger: http.logger },
        useExisting: true,
      }),
    }),
  ],
})
export class LoggingModule {}
