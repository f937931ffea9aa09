import { applyDecorators } from '@nestjs/common';
import { ApiParam, ApiProperty, ApiResponse } from '@nestjs/swagger';
import { STATUS_CODES } from 'node:http';

/**
 * Every error body the service sends: what HttpExceptionFilter, the body checks in
 * app-setup.ts and the parser-error handler write, for every 4xx and 5xx.
 */
export class ErrorBody {
  @ApiProperty({ type: 'integer', minimum: 400, maximum: 599, example: 404 })
  statusCode!: number;

  @ApiProperty({ description: 'the reason phrase of statusCode', example: 'Not Found' })
  error!: string;

  @ApiProperty({
    description: 'what is wrong, for a person to read; names the field when one is',
    example: 'execution 9b2e7c1a-55f0-4a57-9d0e-2f1f3c1b8a10 not found',
  })
  message!: string;
}

/** The body of an error response with this status and message. */
export function errorExample(statusCode: number, message: string): ErrorBody {
  return { statusCode, error: STATUS_CODES[statusCode] ?? 'Error', message };
}

/** An error response of a route: the shared ErrorBody, with an example message. */
export const ApiError = (statusCode: number, description: string, message: string) =>
  applyDecorators(
    ApiResponse({
      status: statusCode,
      description,
      type: ErrorBody,
      example: errorExample(statusCode, message),
    }),
  );

/** The `:id` of the execution routes, and their 404 (an id that is not a UUID is one too). */
export const ApiExecutionId = () =>
  applyDecorators(
    ApiParam({ name: 'id', format: 'uuid', description: "the execution's id" }),
    ApiError(404, 'no such execution', 'execution 9b2e7c1a-55f0-4a57-9d0e-2f1f3c1b8a10 not found'),
  );
