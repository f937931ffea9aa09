import {
  BadRequestException,
  Controller,
  Get,
  HttpCode,
  Param,
  Post,
  Query,
  Res,
} from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { ExecutionEventsRepository } from '../persistence/execution-events.repository';
import { ExecutionsRepository } from '../persistence/executions.repository';
import { ListExecutionsQuery, LogsQuery } from './dto/list-query.dto';
import { executionView } from './execution-view';
import { JobsService } from './jobs.service';

@ApiTags('executions')
@ApiBearerAuth()
@Controller('executions')
export class ExecutionsController {
  constructor(
    private readonly jobs: JobsService,
    private readonly repo: ExecutionsRepository,
    private readonly events: ExecutionEventsRepository,
  ) {}

  @Get()
  @ApiOperation({ summary: 'List executions, newest first' })
  async list(@Query() q: ListExecutionsQuery) {
    const limit = q.limit ?? 50;
    let cursor: { createdAt: number; id: string } | undefined;
    if (q.cursor) {
      const [c, id] = q.cursor.split('.');
      cursor = { createdAt: Number(c), id };
    }
    const rows = await this.repo.list({ status: q.status, limit, cursor });
    const targets = await this.repo.targetsOf(rows.map((r) => r.id));
    const items = rows.map((r) =>
      executionView(
        r,
        targets.filter((t) => t.executionId === r.id),
      ),
    );
    const last = rows[rows.length - 1];
    return {
      items,
      nextCursor: rows.length === limit && last ? `${last.createdAt}.${last.id}` : null,
    };
  }

  @Get(':id')
  @ApiOperation({ summary: 'One execution with its per-server results' })
  get(@Param('id') id: string) {
    return this.jobs.view(id);
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
    const execution = await this.jobs.view(id);
    if (q.serverId && !execution.targets.some((t) => t.serverId === q.serverId)) {
      throw new BadRequestException(`server ${q.serverId} is not a target of execution ${id}`);
    }
    const afterSeq = q.afterSeq ?? 0;
    const rows = await this.events.logs(id, afterSeq, q.limit ?? 1000, q.serverId);
    if (q.format === 'text') {
      const names = new Map(execution.targets.map((t) => [t.serverId, t.serverName]));
      res.type('text/plain; charset=utf-8');
      return rows
        .map((r) => `[${names.get(r.serverId ?? '') ?? r.serverId}] ${r.text ?? ''}\n`)
        .join('');
    }
    return {
      entries: rows.map((r) => ({
        seq: r.logSeq,
        serverId: r.serverId,
        stream: r.stream,
        ts: new Date(r.ts).toISOString(),
        text: r.text,
      })),
      nextSeq: rows.length ? rows[rows.length - 1].logSeq : afterSeq,
    };
  }
}
