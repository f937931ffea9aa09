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
import type { Observable } from 'rxjs';

/**
 * An unknown query parameter is a 400 on every `/v1` route. A route that takes a query
 * DTO (`@Query() q: SomeQuery`) has the validation pipe refuse what its DTO does not
 * declare; this refuses any query parameter on the routes that take none. The probes
 * (`/health/*`) and `/metrics` are outside `/v1` and left alone.
 */
@Injectable()
export class StrictQueryInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const req = context.switchToHttp().getRequest<Request>();
    const names = Object.keys(req.query ?? {});
    if (names.length && req.path.startsWith('/v1/') && !takesQuery(context)) {
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
