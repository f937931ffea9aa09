import { Body, Controller, Get, Headers, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBearerAuth,
  ApiBody,
  ApiExtraModels,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiTags,
  getSchemaPath,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { TokenScope } from '../auth/token-scope.decorator';
import { ExecutionPage, ExecutionView, LogPage } from '../executions/execution-view.dto';
import { ApiError, ApiExecutionId } from '../openapi/errors';
import {
  executionPageExample,
  finishedExecutionExample,
  logPageExample,
  logTextExample,
  queuedExecutionExample,
  rerunExample,
} from '../openapi/examples';
import { ApiIdempotencyKey, ApiIdempotencyMismatch } from './idempotency-key.decorator';
import { GetExecutionQuery, ListExecutionsQuery, LogsQuery } from './dto/list-query.dto';
import { RerunDto } from './dto/rerun.dto';
import { JobsService } from './jobs.service';

@ApiTags('executions')
@ApiBearerAuth()
@ApiExtraModels(LogPage)
@Controller('executions')
export class ExecutionsController {
  constructor(private readonly jobs: JobsService) {}

  @Get()
  @ApiOperation({
    summary: 'List executions, newest first',
    description: 'Every filter given must hold. Pages follow `nextCursor`.',
  })
  @ApiOkResponse({
    type: ExecutionPage,
    description: 'one page of executions',
    example: executionPageExample,
  })
  list(@Query() q: ListExecutionsQuery) {
    return this.jobs.list(q);
  }

  @Get(':id')
  @ApiOperation({
    summary: 'One execution with its per-server results; ?wait=N waits up to N s for its end',
    description:
      'With `wait`, the answer comes as soon as the execution has ended, or after `wait` ' +
      'seconds with its current state.',
  })
  @ApiExecutionId()
  @ApiOkResponse({
    type: ExecutionView,
    description: 'the execution',
    example: finishedExecutionExample,
  })
  get(@Param('id') id: string, @Query() q: GetExecutionQuery) {
    return q.wait ? this.jobs.waitForEnd(id, q.wait) : this.jobs.view(id);
  }

  @Post(':id/cancel')
  @HttpCode(202)
  @ApiOperation({
    summary: 'Cancel a running execution (remote process trees are killed)',
    description: 'Stops the targets still queued or running; an ended execution is a 409.',
  })
  @ApiExecutionId()
  @ApiAcceptedResponse({
    type: ExecutionView,
    description: 'the execution as it was asked to stop',
    example: queuedExecutionExample,
  })
  @ApiError(
    409,
    'the execution has already ended',
    'execution 9b2e7c1a-55f0-4a57-9d0e-2f1f3c1b8a10 is already succeeded',
  )
  cancel(@Param('id') id: string) {
    return this.jobs.cancel(id);
  }

  @Post(':id/rerun')
  @HttpCode(202)
  @ApiOperation({
    summary: "Run an ended execution's job again on its failed (or all) targets",
    description:
      'A new execution with the same script, env, input and settings, linked by `rerunOf`. ' +
      '`only: "failed"` takes the failed, timed_out and cancelled targets (and skipped ones ' +
      'with `includeSkipped`); `only: "all"` every target.',
  })
  @ApiParam({ name: 'id', format: 'uuid', description: 'the ended execution to run again' })
  @ApiIdempotencyKey()
  @ApiBody({ type: RerunDto, examples: { failed: { value: rerunExample } } })
  @ApiAcceptedResponse({
    type: ExecutionView,
    description: 'the new execution, as GET /v1/executions/:id shows it, with `rerunOf` set',
    example: {
      ...queuedExecutionExample,
      id: '1f0c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f',
      rerunOf: queuedExecutionExample.id,
    },
  })
  @ApiError(
    404,
    'no such execution, or a chosen server was deleted',
    'execution 9b2e7c1a-55f0-4a57-9d0e-2f1f3c1b8a10 not found',
  )
  @ApiError(
    409,
    'the execution is still running, no target is chosen, or its job was not kept',
    'execution 9b2e7c1a-55f0-4a57-9d0e-2f1f3c1b8a10 is still running; re-run it once it has ended',
  )
  @ApiIdempotencyMismatch()
  rerun(
    @Param('id') id: string,
    @Body() dto: RerunDto,
    @Headers('idempotency-key') key?: string,
    @TokenScope() scope?: string,
  ) {
    return this.jobs.rerun(id, dto, key, scope);
  }

  @Get(':id/logs')
  @ApiOperation({
    summary: 'Log entries by sequence number; format=text gives [server-name] lines',
    description:
      'Entries after `afterSeq`, at most `limit`. `nextSeq` is the `afterSeq` of the next ' +
      'call: poll with it to follow a running execution.',
  })
  @ApiExecutionId()
  @ApiOkResponse({
    description: 'JSON; with format=text, text/plain lines',
    content: {
      'application/json': {
        schema: { $ref: getSchemaPath(LogPage) },
        example: logPageExample,
      },
      'text/plain': { schema: { type: 'string' }, example: logTextExample },
    },
  })
  @ApiError(
    400,
    'a query parameter is invalid, or serverId is not a target of the execution',
    'server 4c1a9f0e-7b2d-4e8a-9c3f-1d2e3f4a5b6c is not a target of execution ' +
      '9b2e7c1a-55f0-4a57-9d0e-2f1f3c1b8a10',
  )
  async logs(
    @Param('id') id: string,
    @Query() q: LogsQuery,
    @Res({ passthrough: true }) res: Response,
  ) {
    const { execution, entries } = await this.jobs.logs(id, q);
    if (q.format === 'text') {
      const names = new Map(execution.targets.map((t) => [t.serverId, t.serverName]));
      res.type('text/plain; charset=utf-8');
      return entries
        .map((r) => `[${names.get(r.serverId ?? '') ?? r.serverId}] ${r.text ?? ''}\n`)
        .join('');
    }
    const afterSeq = q.afterSeq ?? 0;
    return {
      entries: entries.map((r) => ({
        seq: r.logSeq,
        serverId: r.serverId,
        stream: r.stream,
        ts: new Date(r.ts).toISOString(),
        text: r.text,
      })),
      nextSeq: entries.length ? entries[entries.length - 1].logSeq : afterSeq,
    };
  }
}
