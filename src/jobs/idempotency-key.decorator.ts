import { ApiHeader } from '@nestjs/swagger';
import { ApiError } from '../openapi/errors';

/**
 * The optional `Idempotency-Key` header of the routes that start an execution. Named in
 * lower case as `@Headers('idempotency-key')` reads it, so the document merges the two
 * into one optional parameter instead of adding a required one.
 */
export const ApiIdempotencyKey = () =>
  ApiHeader({
    name: 'idempotency-key',
    required: false,
    description:
      'Retrying with the same key (per service token) returns the execution the first ' +
      'request made instead of starting another.',
    schema: { type: 'string', pattern: '^[\\x21-\\x7e]{1,200}$', example: 'deploy-2025-01-31' },
  });

export const ApiIdempotencyMismatch = () =>
  ApiError(
    422,
    'the Idempotency-Key was already used with a different request',
    'Idempotency-Key was already used with a different request body',
  );
