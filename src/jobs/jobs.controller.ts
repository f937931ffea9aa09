import { Body, Controller, Headers, HttpCode, Post } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBearerAuth,
  ApiBody,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import { TokenScope } from '../auth/token-scope.decorator';
import { ExecutionView } from '../executions/execution-view.dto';
import { ApiError } from '../openapi/errors';
import { createJobExample, queuedExecutionExample } from '../openapi/examples';
import { ApiIdempotencyKey, ApiIdempotencyMismatch } from './idempotency-key.decorator';
import { CreateJobDto } from './dto/create-job.dto';
import { JobsService } from './jobs.service';

@ApiTags('jobs')
@ApiBearerAuth()
@Controller('jobs')
export class JobsController {
  constructor(private readonly jobs: JobsService) {}

  @Post()
  @HttpCode(202)
  @ApiOperation({
    summary: 'Run a script on the targeted servers; returns the new execution',
    description:
      'Queues one execution with a target per server (by id and/or tag). Follow it with ' +
      '`GET /v1/executions/{id}?wait=N` or the `/v1/status` websocket.',
  })
  @ApiIdempotencyKey()
  @ApiBody({ type: CreateJobDto, examples: { uptime: { value: createJobExample } } })
  @ApiAcceptedResponse({
    type: ExecutionView,
    description: 'the new execution, queued (or the one a retry with the same key made)',
    example: queuedExecutionExample,
  })
  @ApiError(
    400,
    'the body is invalid; the message names the field',
    'targets must name at least one server id or tag',
  )
  @ApiError(
    404,
    'a server in targets.serverIds does not exist',
    'server not found: 4c1a9f0e-7b2d-4e8a-9c3f-1d2e3f4a5b6c',
  )
  @ApiError(
    413,
    'the body, the script or the input is over its limit (limits.maxScriptBytes, maxInputBytes)',
    'input is larger than 1048576 bytes',
  )
  @ApiIdempotencyMismatch()
  submit(
    @Body() dto: CreateJobDto,
    @Headers('idempotency-key') key?: string,
    @TokenScope() scope?: string,
  ) {
    return this.jobs.submit(dto, key, scope);
  }
}
