import {
  BadRequestException,
  CallHandler,
  ExecutionContext,
  Injectable,
  NestInterceptor,
} from '@nestjs/common';
import { ROUTE_ARGS_METADATA } from '@nestjs/common/constants';
import { RouteParamtypes } from '@nestjs/common/enums/route-paramtypes.enum';
import type { Request } from 'express';
import { isUtf8 } from 'node:buffer';
import type { Observable } from 'rxjs';

/**
 * An unknown query parameter is a 400 on every `/v1` route. A route that takes a query
 * DTO (`@Query() q: SomeQuery`) has the validation pipe refuse what its DTO does not
 * declare; this refuses any query parameter on the routes that take none. The probes
 * (`/health/*`) and `/metrics` are outside `/v1` and left alone. On `/v1`, a query
 * parameter whose bytes are not UTF-8 (the parser would make them U+FFFD) or that holds
 * a NUL is a 400 too, before any DTO sees it.
 */
@Injectable()
export class StrictQueryInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const req = context.switchToHttp().getRequest<Request>();
    if (!req.path.startsWith('/v1/')) return next.handle();
    const problem = rawQueryProblem(req.originalUrl);
    if (problem) throw new BadRequestException(problem);
    const names = Object.keys(req.query ?? {});
    if (names.length && !takesQuery(context)) {
      const list = names.map((n) => JSON.stringify(n.slice(0, 64))).join(', ');
      throw new BadRequestException(
        `unknown query parameter${names.length > 1 ? 's' : ''} ${list}: ${req.method} ${req.route?.path ?? req.path} takes none`,
      );
    }
    return next.handle();
  }
}

/** Whether the handler reads the query (a `@Query()` argument). */
function takesQuery(context: ExecutionContext): boolean {
  const args: Record<string, unknown> =
    Reflect.getMetadata(ROUTE_ARGS_METADATA, context.getClass(), context.getHandler().name) ?? {};
  return Object.keys(args).some((k) => k.split(':')[0] === String(RouteParamtypes.QUERY));
}

/** What is wrong with the raw query of `url` (percent-decoded bytes), or null. */
function rawQueryProblem(url: string): string | null {
  const at = url.indexOf('?');
  if (at < 0) return null;
  for (const part of url.slice(at + 1).split('&')) {
    // Node hands the request line over as latin1: this gives back the bytes sent.
    const decoded = part
      .replace(/\+/g, ' ')
      .replace(/%([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
    const bytes = Buffer.from(decoded, 'latin1');
    const name = JSON.stringify(part.split('=')[0].slice(0, 64));
    if (!isUtf8(bytes)) return `query parameter ${name} is not valid UTF-8`;
    if (bytes.includes(0)) return `query parameter ${name} must not contain NUL`;
  }
  return null;
}
