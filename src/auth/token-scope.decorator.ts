import { createParamDecorator, ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';
import { ServiceTokensService } from './service-tokens.service';

/**
 * The scope of the caller's service token (ServiceTokensService.scopeOf), for handlers
 * that key things by caller. A custom decorator rather than `@Headers('authorization')`,
 * which the OpenAPI document would list as a required header parameter beside the bearer
 * scheme.
 */
export const TokenScope = createParamDecorator((_data: unknown, ctx: ExecutionContext): string =>
  ServiceTokensService.scopeOf(ctx.switchToHttp().getRequest<Request>().headers.authorization),
);
