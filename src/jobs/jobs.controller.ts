import { Body, Controller, Headers, HttpCode, Post } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiBearerAuth,
  ApiHeader,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import { ServiceTokensService } from '../auth/service-tokens.service';
import { ExecutionView } from '../executions/execution-view.dto';
import { CreateJobDto } from './dto/create-job.dto';
import { JobsService } from './jobs.service';

@ApiTags('jobs')
@ApiBearerAuth()
@Controller('jobs')
export class JobsController {
  constructor(private readonly jobs: JobsService) {}

  @Post()
  @HttpCode(202)
  @ApiOperation({ summary: 'Run a script on the targeted servers; returns the new execution' })
  @ApiHeader({ name: 'Idempotency-Key', required: false })
  @ApiAcceptedResponse({ type: ExecutionView, description: 'the new execution, queued' })
  @ApiBadRequestResponse({ description: 'the body is invalid; the message names the field' })
  submit(
    @Body() dto: CreateJobDto,
    @Headers('idempotency-key') key?: string,
    @Headers('authorization') auth?: string,
  ) {
    return this.jobs.submit(dto, key, ServiceTokensService.scopeOf(auth));
  }
}
