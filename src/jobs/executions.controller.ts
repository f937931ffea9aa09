import { Body, Controller, Get, Headers, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBearerAuth,
  ApiConflictResponse,
  ApiHeader,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { ServiceTokensService } from '../auth/service-tokens.service';
import { ExecutionPage, ExecutionView, LogPage } from '../executions/execution-view.dto';
import { GetExecutionQuery, ListExecutionsQuery, LogsQuery } from './dto/list-query.dto';
import { RerunDto } from './dto/rerun.dto';
import { JobsService } from './jobs.service';

@ApiTags('executions')
@ApiBearerAuth()
@Controller('executions')
export class ExecutionsController {
  constructor(private readonly jobs: JobsService) {}

  @Get()
  @ApiOperation({ summary: 'List executions, newest first' })
  @ApiOkResponse({ type: ExecutionPage })
  list(@Query() q: ListExecutionsQuery) {
    return this.jobs.list(q);
  }

  @Get(':id')
  @ApiOperation({
    summary: 'One execution with its per-server results; ?wait=N waits up to N s for its end',
  })
  @ApiOkResponse({ type: ExecutionView })
  @ApiNotFoundResponse({ description: 'no such execution' })
  get(@Param('id') id: string, @Query() q: GetExecutionQuery) {
    return q.wait ? this.jobs.waitForEnd(id, q.wait) : this.jobs.view(id);
  }

  @Post(':id/cancel')
  @HttpCode(202)
  @ApiOperation({ summary: 'Cancel a running execution (remote process trees are killed)' })
  @ApiAcceptedResponse({
    type: ExecutionView,
    description: 'the execution as it was asked to stop',
  })
  @ApiNotFoundResponse({ description: 'no such execution' })
  @ApiConflictResponse({ description: 'the execution has already ended' })
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
  @ApiHeader({ name: 'Idempotency-Key', required: false })
  @ApiAcceptedResponse({
    type: ExecutionView,
    description: 'the new execution, as GET /v1/executions/:id shows it, with `rerunOf` set',
  })
  @ApiNotFoundResponse({ description: 'no such execution, or a chosen server was deleted' })
  @ApiConflictResponse({
    description: 'the execution is still running, no target is chosen, or its job was not kept',
  })
  rerun(
    @Param('id') id: string,
    @Body() dto: RerunDto,
    @Headers('idempotency-key') key?: string,
    @Headers('authorization') auth?: string,
  ) {
    return this.jobs.rerun(id, dto, key, ServiceTokensService.scopeOf(auth));
  }

  @Get(':id/logs')
  @ApiOperation({
    summary: 'Log entries by sequence number; format=text gives [server-name] lines',
  })
  @ApiOkResponse({ type: LogPage, description: 'JSON; with format=text, text/plain lines' })
  @ApiNotFoundResponse({ description: 'no such execution' })
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
