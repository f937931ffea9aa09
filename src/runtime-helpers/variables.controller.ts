import {
  applyDecorators,
  BadRequestException,
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  NotFoundException,
  Param,
  Put,
} from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiBody,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiProperty,
  ApiTags,
} from '@nestjs/swagger';
import { ApiError } from '../openapi/errors';
import { putVariableExample, variableExample } from '../openapi/examples';
import { ANY_JSON } from '../openapi/schemas';
import { RawJson } from '../common/validation';
import { validKey, VariablesService } from './variables.service';

export class PutVariableDto {
  @ApiProperty({ ...ANY_JSON, description: 'Any JSON value (null included)' })
  @RawJson()
  value!: unknown;
}

/** A variable as the routes answer with it. */
export class VariableView {
  @ApiProperty({ example: 'default' }) userId!: string;
  @ApiProperty({ example: 'release' }) key!: string;
  @ApiProperty({ ...ANY_JSON, description: 'the stored JSON value' }) value!: unknown;
}

const USER_ID = /^[A-Za-z0-9_.:@-]{1,200}$/;

/** The path of every variable route, its checks (400) and, where it reads one, the 404. */
const VariablePath = (reads: boolean) =>
  applyDecorators(
    ApiParam({
      name: 'userId',
      description: 'the scope jobs give as userId (`default` when they give none)',
      schema: { type: 'string', pattern: USER_ID.source },
    }),
    ApiParam({
      name: 'key',
      description: '1-200 bytes without control characters',
      schema: { type: 'string', minLength: 1 },
    }),
    ApiError(
      400,
      'userId or key is malformed, or the body is invalid',
      'userId must be 1-200 of [A-Za-z0-9_.:@-]',
    ),
    ...(reads
      ? [ApiError(404, 'the variable is not set', 'variable release is not set for default')]
      : []),
  );

function check(userId: string, key: string): void {
  if (!USER_ID.test(userId))
    throw new BadRequestException('userId must be 1-200 of [A-Za-z0-9_.:@-]');
  if (!validKey(key))
    throw new BadRequestException('key must be 1-200 bytes without control characters');
}

/** Runtime variables as callers see them (scripts use the runtime-helper API). */
@ApiTags('variables')
@ApiBearerAuth()
@Controller('variables')
export class VariablesController {
  constructor(private readonly variables: VariablesService) {}

  @Get(':userId/:key')
  @ApiOperation({
    summary: 'Read a variable',
    description: 'The value a script set with setVariable, or a PUT here.',
  })
  @VariablePath(true)
  @ApiOkResponse({ type: VariableView, description: 'the variable', example: variableExample })
  async get(@Param('userId') userId: string, @Param('key') key: string): Promise<VariableView> {
    check(userId, key);
    const v = await this.variables.get(userId, key);
    if (!v.found) throw new NotFoundException(`variable ${key} is not set for ${userId}`);
    return { userId, key, value: v.value };
  }

  @Put(':userId/:key')
  @ApiOperation({
    summary: 'Set a variable (any JSON value)',
    description: 'Creates it, or replaces its value.',
  })
  @VariablePath(false)
  @ApiBody({ type: PutVariableDto, examples: { object: { value: putVariableExample } } })
  @ApiOkResponse({
    type: VariableView,
    description: 'the variable as stored',
    example: variableExample,
  })
  async put(
    @Param('userId') userId: string,
    @Param('key') key: string,
    @Body() body: PutVariableDto,
  ) {
    check(userId, key);
    // null is a value; only a missing `value` is a mistake.
    if (body.value === undefined)
      throw new BadRequestException('value is required (any JSON, null included)');
    await this.variables.set(userId, key, body.value);
    return { userId, key, value: body.value };
  }

  @Delete(':userId/:key')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete a variable', description: 'A variable not set is a 404.' })
  @VariablePath(true)
  @ApiNoContentResponse({ description: 'deleted' })
  async remove(@Param('userId') userId: string, @Param('key') key: string) {
    check(userId, key);
    if (!(await this.variables.remove(userId, key))) {
      throw new NotFoundException(`variable ${key} is not set for ${userId}`);
    }
  }
}
