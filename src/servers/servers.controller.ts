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
  ApiBearerAuth,
  ApiBody,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { ApiError } from '../openapi/errors';
import {
  createServerExample,
  serverCheckExample,
  serverExample,
  updateServerExample,
} from '../openapi/examples';
import { CheckQuery } from './dto/check-query.dto';
import { CreateServerDto } from './dto/create-server.dto';
import { ListServersQuery } from './dto/list-servers-query.dto';
import { ServerCheckResult, ServerView } from './dto/server-view.dto';
import { UpdateServerDto } from './dto/update-server.dto';
import { ServerCheckService } from './server-check.service';
import { ServersService } from './servers.service';

const ServerNotFound = () =>
  ApiError(404, 'no such server', 'server 4c1a9f0e-7b2d-4e8a-9c3f-1d2e3f4a5b6c not found');
const NameTaken = () =>
  ApiError(409, 'a server with this name exists', 'a server named "web-1" already exists');
const ServerId = () => ApiParam({ name: 'id', format: 'uuid', description: "the server's id" });

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
  @ApiOperation({
    summary: 'Register a server (credentials are stored encrypted)',
    description:
      'Give exactly one of `privateKey` and `password`. Credentials are never returned. ' +
      'Without `hostKey` the first key seen is pinned, unless the host-key policy is strict.',
  })
  @ApiBody({ type: CreateServerDto, examples: { key: { value: createServerExample } } })
  @ApiCreatedResponse({ type: ServerView, description: 'the new server', example: serverExample })
  @ApiError(
    400,
    'a field is invalid (e.g. jumpServerId unknown, cyclic or too deep)',
    'host must be a hostname (letters, digits, dots and hyphens) or an IPv4/IPv6 address',
  )
  @NameTaken()
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
    description: 'the servers matching every filter given',
    example: [serverExample],
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
  @ApiOperation({ summary: 'One server', description: 'The server without its credentials.' })
  @ServerId()
  @ApiOkResponse({ type: ServerView, description: 'the server', example: serverExample })
  @ServerNotFound()
  get(@Param('id') id: string): Promise<ServerView> {
    return this.servers.get(id);
  }

  @Patch(':id')
  @ApiOperation({
    summary: 'Change a server',
    description:
      'Only the given fields change. Changing host, port or username without hostKey clears the pinned host key.',
  })
  @ServerId()
  @ApiBody({ type: UpdateServerDto, examples: { retag: { value: updateServerExample } } })
  @ApiOkResponse({ type: ServerView, description: 'the server as changed', example: serverExample })
  @ApiError(
    400,
    'a field is invalid (e.g. jumpServerId unknown, itself, cyclic or too deep)',
    'jumpServerId: a server cannot be its own jump host',
  )
  @ServerNotFound()
  @NameTaken()
  update(@Param('id') id: string, @Body() dto: UpdateServerDto): Promise<ServerView> {
    return this.servers.update(id, dto);
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Delete a server',
    description: 'Refused while other servers use it as their jump host.',
  })
  @ServerId()
  @ApiNoContentResponse({ description: 'deleted' })
  @ServerNotFound()
  @ApiError(
    409,
    'other servers use this one as their jump host',
    'server 4c1a9f0e-7b2d-4e8a-9c3f-1d2e3f4a5b6c is the jump host of "db-1"; ' +
      'change or clear their jumpServerId first',
  )
  async remove(@Param('id') id: string): Promise<void> {
    await this.servers.remove(id);
  }

  @Post(':id/check')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Connect, run `true`, report the host key and latency',
    description:
      'A failed connection is still a 200, with `ok: false` and the `error` that stopped it.',
  })
  @ServerId()
  @ApiOkResponse({
    type: ServerCheckResult,
    description: 'what the check saw',
    example: serverCheckExample,
  })
  @ServerNotFound()
  check(@Param('id') id: string, @Query() q: CheckQuery): Promise<ServerCheckResult> {
    return this.checker.check(id, q.timeoutSeconds ?? 10);
  }
}
