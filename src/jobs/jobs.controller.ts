import { Body, Controller, Headers, HttpCode, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiHeader, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ServiceTokensService } from '../auth/service-tokens.service';
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
  submit(
    @Body() dto: CreateJobDto,
    @Headers('idempotency-key') key?: string,
    @Headers('authorization') auth?: string,
  ) {
    return this.jobs.submit(dto, key, ServiceTokensService.scopeOf(auth));
  }
}
