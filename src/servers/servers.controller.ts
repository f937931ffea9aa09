import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Param,
  Patch,
  Post,
  Query,
  Res,
} from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiBearerAuth,
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { CheckQuery } from './dto/check-query.dto';
import { CreateServerDto } from './dto/create-server.dto';
import { ListServersQuery } from './dto/list-servers-query.dto';
import { ServerCheckResult, ServerView } from './dto/server-view.dto';
import { UpdateServerDto } from './dto/update-server.dto';
import { ServerCheckService } from './server-check.service';
import { ServersService } from './servers.service';

@ApiTags('servers')
@ApiBearerAuth()
@Controller('servers')
export class ServersController {
  constructor(
    private readonly servers: ServersService,
    private readonly checker: ServerCheckService,
  ) {}

  @Post()
  @HttpCode(201)
  @ApiOperation({ summary: 'Register a server (credentials are stored encrypted)' })
  @ApiCreatedResponse({ type: ServerView })
  @ApiBadRequestResponse({
    description: 'a field is invalid (e.g. jumpServerId unknown, cyclic or too deep)',
  })
  @ApiConflictResponse({ description: 'a server with this name exists' })
  create(@Body() dto: CreateServerDto): Promise<ServerView> {
    return this.servers.create(dto);
  }

  @Get()
  @ApiOperation({
    summary: 'List servers, ordered by name',
    description:
      'The body stays an array of servers. With `limit`, a page: the `X-Next-Cursor` ' +
      'header, when present, is the `cursor` of the next one.',
  })
  @ApiOkResponse({
    type: [ServerView],
    headers: {
      'X-Next-Cursor': {
        description: 'cursor of the next page; absent on the last one',
        schema: { type: 'string' },
      },
    },
  })
  async list(
    @Query() q: ListServersQuery,
    @Res({ passthrough: true }) res: Response,
  ): Promise<ServerView[]> {
    const { items, nextCursor } = await this.servers.list(q);
    if (nextCursor) res.setHeader('X-Next-Cursor', nextCursor);
    return items;
  }

  @Get(':id')
  @ApiOkResponse({ type: ServerView })
  @ApiNotFoundResponse()
  get(@Param('id') id: string): Promise<ServerView> {
    return this.servers.get(id);
  }

  @Patch(':id')
  @ApiOperation({
    summary: 'Change a server',
    description:
      'Only the given fields change. Changing host, port or username without hostKey clears the pinned host key.',
  })
  @ApiOkResponse({ type: ServerView })
  @ApiBadRequestResponse({
    description: 'a field is invalid (e.g. jumpServerId unknown, itself, cyclic or too deep)',
  })
  @ApiNotFoundResponse()
  @ApiConflictResponse({ description: 'a server with this name exists' })
  update(@Param('id') id: string, @Body() dto: UpdateServerDto): Promise<ServerView> {
    return this.servers.update(id, dto);
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiNoContentResponse()
  @ApiNotFoundResponse()
  @ApiConflictResponse({ description: 'other servers use this one as their jump host' })
  async remove(@Param('id') id: string): Promise<void> {
    await this.servers.remove(id);
  }

  @Post(':id/check')
  @HttpCode(200)
  @ApiOperation({ summary: 'Connect, run `true`, report the host key and latency' })
  @ApiOkResponse({ type: ServerCheckResult })
  @ApiNotFoundResponse()
  check(@Param('id') id: string, @Query() q: CheckQuery): Promise<ServerCheckResult> {
    return this.checker.check(id, q.timeoutSeconds ?? 10);
  }
}
