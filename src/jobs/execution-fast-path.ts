import { createHash } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { ServiceTokensService } from '../auth/service-tokens.service';
import { errorBody } from '../common/http-exception.filter';
import { isUuid } from '../common/uuid';
import type { HttpLogger } from '../logging/logging.module';
import { JobsService } from './jobs.service';

/** `/v1/executions/<id>`, bare or with exactly `?wait=<0..60>` (GetExecutionQuery's range). */
const PLAIN_GET = /^\/v1\/executions\/([^/?#]+)(?:\?wait=(0|[1-9]|[1-5][0-9]|60))?$/;

/**
 * `GET /v1/executions/:id` and its long-poll (`?wait=N`) answered by the HTTP server itself,
 * before express and Nest: the route every waiting client calls, the one a warm job's run
 * window has in it (the client waits while its job runs), and the one a poller repeats.
 * express's router, Nest's guard, interceptor, pipes and filter cost ~0.4 ms of event-loop
 * time a request (bench/README.md); here it is the token check, a regex, the service call
 * and one write.
 *
 * Only the plain form is taken: a UUID, no query or exactly `wait=<0..60>` in its canonical
 * spelling, a valid bearer token, no conditional header. Everything else goes on to the app
 * untouched, so its answers (401, 400 for a bad or unknown query parameter, 304) stay the
 * app's own. What is answered here is what the app would answer: the same JSON, the
 * `Content-Type` and weak `ETag` express sets, the request's X-Request-Id and log line (the
 * app's pino-http middleware), an error as the app's exception filter renders it.
 */
interface Deps {
  jobs: JobsService;
  tokens: ServiceTokensService;
  httpLogger: HttpLogger;
}

export function installExecutionFastPath(server: Server, deps: Deps): void {
  const app = server.listeners('request') as ((
    req: IncomingMessage,
    res: ServerResponse,
  ) => void)[];
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (answer(req, res, deps)) return;
    for (const listener of app) listener.call(server, req, res);
  });
}

/** Whether the request is taken here (then it is answered, now or at the end of its wait). */
function answer(req: IncomingMessage, res: ServerResponse, deps: Deps): boolean {
  if (req.method !== 'GET' || req.url === undefined) return false;
  const m = PLAIN_GET.exec(req.url);
  if (!m || !isUuid(m[1])) return false;
  const h = req.headers;
  if (h['if-none-match'] !== undefined || h['if-modified-since'] !== undefined) return false;
  if (!deps.tokens.isValid(ServiceTokensService.fromHeader(h.authorization))) return false;
  const [, id, wait] = m;
  // for the log line, as the app's would have it
  (req as IncomingMessage & { query?: object }).query = wait === undefined ? {} : { wait };
  deps.httpLogger(req, res);
  const seconds = Number(wait ?? 0);
  const work = seconds ? deps.jobs.waitForEnd(id, seconds) : deps.jobs.view(id);
  work.then(
    (view) => send(res, 200, JSON.stringify(view)),
    (e: unknown) => {
      const body = errorBody(e);
      send(res, body.statusCode, JSON.stringify(body));
    },
  );
  return true;
}

function send(res: ServerResponse, status: number, json: string): void {
  if (res.headersSent || res.destroyed) return;
  const body = Buffer.from(json, 'utf8');
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': body.length,
    ETag: weakETag(body),
  });
  res.end(body);
}

/** express's default ETag (the `etag` package, weak): length in hex and 27 chars of SHA-1. */
function weakETag(body: Buffer): string {
  const hash = createHash('sha1').update(body).digest('base64').substring(0, 27);
  return `W/"${body.length.toString(16)}-${hash}"`;
}
