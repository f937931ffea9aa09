import {
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
import { ApiBearerAuth, ApiOperation, ApiProperty, ApiTags } from '@nestjs/swagger';
import { RawJson } from '../common/validation';
import { validKey, VariablesService } from './variables.service';

export class PutVariableDto {
  @ApiProperty({ description: 'Any JSON value' })
  @RawJson()
  value!: unknown;
}

const USER_ID = /^[A-Za-z0-9_.:@-]{1,200}$/;

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
  @ApiOperation({ summary: 'Read a variable' })
  async get(@Param('userId') userId: string, @Param('key') key: string) {
    check(userId, key);
    const v = await this.variables.get(userId, key);
    if (!v.found) throw new NotFoundException(`variable ${key} is not set for ${userId}`);
    return { userId, key, value: v.value };
  }

  @Put(':userId/:key')
  @ApiOperation({ summary: 'Set a variable (any JSON value)' })
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
  @ApiOperation({ summary: 'Delete a variable' })
  async remove(@Param('userId') userId: string, @Param('key') key: string) {
    check(userId, key);
    if (!(await this.variables.remove(userId, key))) {
      throw new NotFoundException(`variable ${key} is not set for ${userId}`);
    }
  }
}
