import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import { STATUS_CODES } from 'node:http';
import { isDatabaseUnavailable } from '../persistence/write-errors';

const logger = new Logger('Http');

/** The JSON body every error leaves with (a real fault, 5xx but 503, is logged). */
export function errorBody(exception: unknown): {
  statusCode: number;
  error: string;
  message: string;
} {
  const { statusCode, message } = describe(exception);
  if (statusCode >= 500 && statusCode !== 503) {
    logger.error(`unhandled error: ${(exception as Error)?.message}`, (exception as Error)?.stack);
  }
  return { statusCode, error: STATUS_CODES[statusCode] ?? 'Error', message };
}

/** Every error leaves as `{statusCode, error, message}`; only real faults are 5xx. */
@Catch()
export class HttpExceptionFilter implements ExceptionFilter {
  catch(exception: unknown, host: ArgumentsHost): void {
    if (host.getType() !== 'http') return;
    const res = host.switchToHttp().getResponse();
    const body = errorBody(exception);
    if (res.headersSent) return;
    res.status(body.statusCode).json(body);
  }
}

function describe(e: unknown): { statusCode: number; message: string } {
  if (e instanceof HttpException) {
    const body = e.getResponse();
    let message: unknown = typeof body === 'string' ? body : (body as any)?.message;
    if (Array.isArray(message)) message = message.join('; ');
    return { statusCode: e.getStatus(), message: String(message ?? e.message) };
  }
  // body-parser and friends signal caller mistakes with a 4xx status.
  const status = (e as any)?.status ?? (e as any)?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const type = (e as any)?.type;
    const message =
      type === 'entity.parse.failed'
        ? 'request body is not valid JSON'
        : type === 'entity.too.large'
          ? 'request body is too large'
          : String((e as Error).message);
    return { statusCode: status, message };
  }
  if (isDatabaseUnavailable(e)) {
    return { statusCode: 503, message: 'the database is unavailable; try again shortly' };
  }
  return { statusCode: 500, message: 'internal error' };
}
