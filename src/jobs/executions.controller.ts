import { Controller, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { GetExecutionQuery, ListExecutionsQuery, LogsQuery } from './dto/list-query.dto';
import { JobsService } from './jobs.service';

@ApiTags('executions')
@ApiBearerAuth()
@Controller('executions')
export class ExecutionsController {
  constructor(private readonly jobs: JobsService) {}

  @Get()
  @ApiOperation({ summary: 'List executions, newest first' })
  list(@Query() q: ListExecutionsQuery) {
    return this.jobs.list(q);
  }

  @Get(':id')
  @ApiOperation({
    summary: 'One execution with its per-server results; ?wait=N waits up to N s for its end',
  })
  get(@Param('id') id: string, @Query() q: GetExecutionQuery) {
    return q.wait ? this.jobs.waitForEnd(id, q.wait) : this.jobs.view(id);
  }

  @Post(':id/cancel')
  @HttpCode(202)
  @ApiOperation({ summary: 'Cancel a running execution (remote process trees are killed)' })
  cancel(@Param('id') id: string) {
    return this.jobs.cancel(id);
  }

  @Get(':id/logs')
  @ApiOperation({
    summary: 'Log entries by sequence number; format=text gives [server-name] lines',
  })
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
