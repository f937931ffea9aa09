import { INestApplication, RequestMethod } from '@nestjs/common';
import { NestExpressApplication } from '@nestjs/platform-express';
import { WsAdapter } from '@nestjs/platform-ws';
import { OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import type { NextFunction, Request, Response } from 'express';
import { HttpExceptionFilter } from './common/http-exception.filter';
import { isUtf8 } from 'node:buffer';
import type { Server } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  deeperThan,
  loneSurrogateAt,
  loneSurrogateMessage,
  tooDeepMessage,
} from './common/json-depth';
import { StrictQueryInterceptor } from './common/strict-query.interceptor';
import { makeValidationPipe } from './common/validation';
import { AsyncApiDocument, asyncApiDocument } from './openapi/asyncapi';
import { buildOpenApiDocument } from './openapi/document';
import { AppConfig } from './config/app-config';
import { ServiceTokensService } from './auth/service-tokens.service';
import { installExecutionFastPath } from './jobs/execution-fast-path';
import { JobsService } from './jobs/jobs.service';
import { HTTP_LOGGER, type HttpLogger } from './logging/logging.module';
import { serveUi } from './ui/ui-static';

/** Everything main.ts applies to the app, shared with the e2e tests. */
export function configureApp(app: INestApplication): {
  openapi: OpenAPIObject;
  asyncapi: AsyncApiDocument;
} {
  const config = app.get(AppConfig);
  const express = app as NestExpressApplication;
  // First: every request, even one refused below, gets its request id and its log line.
  express.use(app.get<HttpLogger>(HTTP_LOGGER));
  // Scripts and input can be large; the DTO layer enforces the precise limits.
  const bodyLimit = config.limits.maxScriptBytes + config.limits.maxInputBytes + 256 * 1024;
  express.useBodyParser('json', {
    limit: bodyLimit,
    // Bytes that are not UTF-8 would be turned into U+FFFD silently: refuse them.
    verify: (_req: unknown, _res: unknown, buf: Buffer) => {
      if (!isUtf8(buf))
        throw Object.assign(new Error('request body is not valid UTF-8'), { status: 400 });
    },
  });
  // Before validation: class-transformer (and JSON.stringify later) recurse, and a body
  // nested a few thousand deep would overflow their stack.
  const maxDepth = config.limits.maxJsonDepth;
  express.use((req: Request, res: Response, next: NextFunction) => {
    const refuse = (message: string) =>
      res.status(400).json({ statusCode: 400, error: 'Bad Request', message });
    // Every body this API takes is an object; an array would pass validation as one.
    if (Array.isArray(req.body)) return refuse('the request body must be a JSON object');
    if (deeperThan(req.body, maxDepth)) {
      return refuse(tooDeepMessage('the request body', maxDepth));
    }
    const bad = loneSurrogateAt(req.body);
    if (bad) return refuse(loneSurrogateMessage(bad));
    next();
  });
  // GET /v1/executions/:id (and its long-poll) in its plain form: answered before express,
  // the same way (jobs/execution-fast-path.ts). Only where the app serves executions.
  const jobs = providerOf(app, JobsService);
  if (jobs) {
    installExecutionFastPath(app.getHttpServer() as Server, {
      jobs,
      tokens: app.get(ServiceTokensService),
      httpLogger: app.get<HttpLogger>(HTTP_LOGGER),
    });
  }
  // Requests node's parser refuses (a URL or headers past its 16 KiB, malformed framing)
  // never reach express: answer them with the same JSON error body too.
  (app.getHttpServer() as Server).on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) =>
    refuseUnparsable(err, socket),
  );
  express.disable('x-powered-by');
  // The live view's static page (public; its data comes from the authenticated API).
  serveUi(express.getHttpAdapter().getInstance());
  app.setGlobalPrefix('v1', {
    exclude: [
      { path: 'health/live', method: RequestMethod.GET },
      { path: 'health/ready', method: RequestMethod.GET },
      { path: 'metrics', method: RequestMethod.GET },
    ],
  });
  // Plain RFC 6455 websockets (the /v1/status gateway); the HTTP prefix does not apply.
  app.useWebSocketAdapter(new WsAdapter(app));
  app.useGlobalPipes(makeValidationPipe());
  app.useGlobalInterceptors(new StrictQueryInterceptor());
  app.useGlobalFilters(new HttpExceptionFilter());
  const docs = { openapi: buildOpenApiDocument(app), asyncapi: asyncApiDocument(config.port) };
  SwaggerModule.setup('docs', app, docs.openapi, { jsonDocumentUrl: 'docs/json' });
  // Public like the OpenAPI document (outside the guarded controllers).
  app.getHttpAdapter().get('/docs/asyncapi.json', (_req: Request, res: Response) => {
    res.json(docs.asyncapi);
  });
  return docs;
}

/** The app's instance of `type`, or undefined when no module of the app provides it. */
function providerOf<T>(app: INestApplication, type: new (...args: never[]) => T): T | undefined {
  try {
    return app.get(type, { strict: false });
  } catch {
    return undefined;
  }
}

function refuseUnparsable(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const status =
    err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const message =
    status === 431
      ? 'request line or headers are too large'
      : status === 408
        ? 'request timed out'
        : 'malformed HTTP request';
  const body = JSON.stringify({ statusCode: status, error: STATUS_CODES[status], message });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
