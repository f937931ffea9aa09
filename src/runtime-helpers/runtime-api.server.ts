import { Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import * as http from 'node:http';
import type { Duplex } from 'node:stream';
import { ExecutionTokensService } from '../auth/execution-tokens.service';
import { ServiceTokensService } from '../auth/service-tokens.service';
import { AppConfig } from '../config/app-config';
import { MetricsService } from '../metrics/metrics.service';
import { RuntimeSession, RuntimeSessionsService } from './runtime-sessions.service';
import { ToolActionError, ToolActionsService } from './tool-actions.service';
import { isUtf8 } from 'node:buffer';
import {
  deeperThan,
  loneSurrogateAt,
  loneSurrogateMessage,
  tooDeepMessage,
} from '../common/json-depth';
import { autoValue, rawRender, validKey, VariablesService } from './variables.service';

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface Reply {
  status: number;
  body: unknown;
  raw?: boolean;
}

/**
 * The runtime-helper API. It has its own HTTP server that never listens on a port: it
 * only serves streams handed over by the per-target tunnels, so through a tunnel
 * nothing but these routes exists (no jobs API, no /metrics, no /health).
 */
@Injectable()
export class RuntimeApiServer implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('RuntimeApi');
  private readonly server: http.Server;
  /** The target each tunnelled connection was forwarded for: a token works only on its own. */
  private readonly boundTo = new WeakMap<object, string>();

  constructor(
    private readonly config: AppConfig,
    private readonly tokens: ExecutionTokensService,
    private readonly sessions: RuntimeSessionsService,
    private readonly variables: VariablesService,
    private readonly tools: ToolActionsService,
    private readonly metrics: MetricsService,
  ) {
    this.server = http.createServer(
      { keepAliveTimeout: 5000 },
      (req, res) => void this.handle(req, res),
    );
    this.server.on('clientError', (_e, socket) => socket.destroy());
  }

  /**
   * Serves one connection that arrived through the tunnel of target `targetId`: only that
   * target's token is honoured on it, so a token read out of another job is useless
   * through any tunnel but its own.
   */
  serve(stream: Duplex, targetId: string): void {
    this.boundTo.set(stream, targetId);
    this.server.emit('connection', stream);
  }

  /** Opt-in loopback listener (runtime.loopbackPort) for benchmarks; off by default. */
  async onModuleInit(): Promise<void> {
    const port = this.config.runtime.loopbackPort;
    if (!port) return;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
    this.logger.warn(`runtime API also listening on 127.0.0.1:${port} (runtime.loopbackPort)`);
  }

  onModuleDestroy(): void {
    this.server.close();
    this.server.closeAllConnections();
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let helper = 'unknown';
    let reply: Reply;
    try {
      // The path as sent: URL parsing would resolve a key "." or ".." (or %2e%2e) as a
      // dot segment, and PUT /runtime/v1/variables/.. would become PUT /runtime/v1/.
      const target = req.url ?? '/';
      const q = target.indexOf('?');
      const pathname = q < 0 ? target : target.slice(0, q);
      const params = new URLSearchParams(q < 0 ? '' : target.slice(q + 1));
      const route = this.route(req.method ?? 'GET', pathname);
      helper = route.helper;
      const session = this.authenticate(req, this.boundTo.get(req.socket));
      const { ratePerSecond, burst } = this.config.runtime;
      if (!this.sessions.take(session, ratePerSecond, burst)) {
        throw new HttpError(429, 'too many helper calls; slow down');
      }
      const body = route.needsBody ? await this.readBody(req) : undefined;
      reply = await route.run(session, body, params.get('format') === 'raw');
    } catch (e) {
      if (e instanceof HttpError || e instanceof ToolActionError) {
        reply = {
          status: e.status,
          body: { statusCode: e.status, error: http.STATUS_CODES[e.status], message: e.message },
        };
      } else {
        this.logger.error(`helper ${helper} failed: ${(e as Error)?.message}`);
        reply = {
          status: 500,
          body: { statusCode: 500, error: 'Internal Server Error', message: 'internal error' },
        };
      }
    }
    this.metrics.helperCalls.inc({ helper, status: String(reply.status) });
    // `?format=raw` is bash's: bash cannot hold NUL, and its `read -N` does not count the
    // NULs it drops, so a body holding one would never reach its Content-Length
    const payload = reply.raw ? String(reply.body).replace(/\0/g, '') : JSON.stringify(reply.body);
    res.writeHead(reply.status, {
      'Content-Type': reply.raw ? 'text/plain; charset=utf-8' : 'application/json',
      'Content-Length': Buffer.byteLength(payload),
    });
    res.end(payload);
  }

  /** `tunnelOf` is unset only on the opt-in loopback listener (benchmarks). */
  private authenticate(req: http.IncomingMessage, tunnelOf: string | undefined): RuntimeSession {
    const token = ServiceTokensService.fromHeader(req.headers.authorization);
    const claims = token ? this.tokens.verify(token) : null;
    const mine = claims && (tunnelOf === undefined || claims.jti === tunnelOf);
    const session = mine ? this.sessions.forClaims(claims) : undefined;
    // One answer for every failure: no hint whether a token was valid for a finished target.
    if (!session) throw new HttpError(401, 'missing, invalid or expired execution token');
    return session;
  }

  private async readBody(req: http.IncomingMessage): Promise<{ json: boolean; value: unknown }> {
    const limit = this.config.runtime.maxBodyBytes;
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += chunk.length;
      if (size > limit) throw new HttpError(413, `request body larger than ${limit} bytes`);
      chunks.push(chunk);
    }
    const bytes = Buffer.concat(chunks);
    // Bytes that are not UTF-8 would be turned into U+FFFD silently: refuse them.
    if (!isUtf8(bytes)) throw new HttpError(400, 'request body is not valid UTF-8');
    const text = bytes.toString('utf8');
    const type = String(req.headers['content-type'] ?? '');
    const max = this.config.limits.maxJsonDepth;
    const refuseDeep = (v: unknown) => {
      if (deeperThan(v, max)) throw new HttpError(400, tooDeepMessage('the value', max));
      // "\ud800" in JSON: no UTF-8 store can keep it (the REST API refuses it too).
      const bad = loneSurrogateAt(v);
      if (bad) throw new HttpError(400, loneSurrogateMessage(bad));
    };
    if (type.startsWith('text/plain')) {
      refuseDeep(autoValue(text)); // a text body that is JSON is stored as that JSON
      return { json: false, value: text };
    }
    let value: unknown;
    try {
      value = text ? JSON.parse(text) : {};
    } catch {
      throw new HttpError(400, 'request body is not valid JSON');
    }
    refuseDeep(value);
    return { json: true, value };
  }

  private route(method: string, path: string) {
    type Run = (s: RuntimeSession, body: any, raw: boolean) => Promise<Reply> | Reply;
    const r = (helper: string, needsBody: boolean, run: Run) => ({ helper, needsBody, run });
    const varMatch = /^\/runtime\/v1\/variables\/([^/]+)$/.exec(path);
    const ok = { status: 200, body: { ok: true } };

    if (path === '/runtime/v1/context' && method === 'GET') {
      return r('context', false, (s) => ({ status: 200, body: s.context }));
    }
    if (path === '/runtime/v1/input' && method === 'GET') {
      return r('input', false, (s, _b, raw) =>
        raw
          ? { status: 200, body: rawRender(s.input), raw: true }
          : { status: 200, body: { data: s.input ?? null } },
      );
    }
    if (path === '/runtime/v1/output' && method === 'POST') {
      return r('output', true, (s, b) => {
        s.output = {
          set: true,
          value: b.json ? fields(b.value, ['data']).data : autoValue(b.value),
        };
        s.onChange?.();
        return ok;
      });
    }
    if (path === '/runtime/v1/condition' && method === 'POST') {
      return r('condition', true, (s, b) => {
        const c = b.json
          ? fields(b.value, ['condition']).condition
          : b.value.trim() === 'true'
            ? true
            : b.value.trim() === 'false'
              ? false
              : null;
        if (typeof c !== 'boolean') throw new HttpError(400, 'condition must be a boolean');
        s.condition = c;
        s.onChange?.();
        return ok;
      });
    }
    if (path === '/runtime/v1/tool-actions' && method === 'POST') {
      return r('toolAction', true, async (s, b) => {
        const v = b.json ? fields(b.value, ['tool', 'action'], ['params']) : null;
        if (typeof v?.tool !== 'string' || !v.tool || typeof v?.action !== 'string' || !v.action) {
          throw new HttpError(400, 'tool and action must be non-empty strings');
        }
        return {
          status: 200,
          body: { result: await this.tools.run(s.context, v.tool, v.action, v.params) },
        };
      });
    }
    if (varMatch && (method === 'GET' || method === 'PUT')) {
      let key: string;
      try {
        key = decodeURIComponent(varMatch[1]);
      } catch {
        throw new HttpError(400, 'variable key is not valid percent-encoding');
      }
      if (!validKey(key))
        throw new HttpError(400, 'variable key must be 1-200 bytes without control characters');
      if (method === 'GET') {
        return r('getVariable', false, async (s, _b, raw) => {
          const v = await this.variables.get(s.context.userId, key);
          if (!v.found) throw new HttpError(404, `variable ${JSON.stringify(key)} is not set`);
          return raw
            ? { status: 200, body: rawRender(v.value), raw: true }
            : { status: 200, body: { key, value: v.value } };
        });
      }
      return r('setVariable', true, async (s, b) => {
        await this.variables.set(
          s.context.userId,
          key,
          b.json ? fields(b.value, ['value']).value : autoValue(b.value),
        );
        return ok;
      });
    }
    throw new HttpError(404, `no runtime route ${method} ${path}`);
  }
}

/** A JSON object body with every `required` field, and nothing but those and `optional`. */
function fields(body: unknown, required: string[], optional: string[] = []): Record<string, any> {
  const shape = [...required, ...optional].map((f) => `"${f}"`).join(', ');
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HttpError(400, `body must be a JSON object with ${shape}`);
  }
  const missing = required.find((f) => !Object.prototype.hasOwnProperty.call(body, f));
  if (missing) throw new HttpError(400, `body must be a JSON object with "${missing}"`);
  const unknown = Object.keys(body).find((k) => !required.includes(k) && !optional.includes(k));
  if (unknown !== undefined) {
    throw new HttpError(400, `body field ${JSON.stringify(unknown.slice(0, 64))} is unknown`);
  }
  return body as Record<string, any>;
}
