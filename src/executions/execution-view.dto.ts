import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ANY_JSON } from '../openapi/schemas';
import { TARGET_ERROR_CODES } from './error-codes';
import { LOG_STREAMS } from './records';
import { EXECUTION_STATUSES, TARGET_STATUSES } from './statuses';

/*
 * The response schemas of the execution routes, for the OpenAPI document only: the
 * routes answer with executionView()/targetView() (execution-view.ts), whose fields these
 * classes describe one for one.
 */

export class TargetErrorView {
  @ApiProperty({ enum: [...TARGET_ERROR_CODES] })
  code!: string;

  @ApiProperty() message!: string;
}

export class TargetPhasesView {
  @ApiProperty({ type: 'integer', nullable: true }) connectMs!: number | null;
  @ApiProperty({ type: 'integer', nullable: true }) deployMs!: number | null;
  @ApiProperty({ type: 'integer', nullable: true }) tunnelMs!: number | null;
  @ApiProperty({ type: 'integer', nullable: true }) runMs!: number | null;
}

export class TargetView {
  @ApiProperty({ format: 'uuid' }) serverId!: string;
  @ApiProperty() serverName!: string;
  @ApiProperty({ enum: [...TARGET_STATUSES] }) status!: string;
  @ApiProperty({ type: 'integer', nullable: true }) exitCode!: number | null;
  @ApiProperty({ type: String, nullable: true, example: 'SIGKILL' }) signal!: string | null;
  @ApiPropertyOptional({ type: TargetErrorView }) error?: TargetErrorView;
  @ApiProperty({ type: String, nullable: true, enum: ['api', 'bundled', null] })
  helperMode!: string | null;
  @ApiPropertyOptional({ description: 'why auto mode fell back to bundled' })
  fallbackReason?: string;
  @ApiProperty({ ...ANY_JSON, description: 'what the script set with setOutput (any JSON)' })
  output!: unknown;
  @ApiProperty({ type: Boolean, nullable: true }) condition!: boolean | null;
  @ApiProperty({ description: 'output was cut at limits.maxOutputBytes' }) truncated!: boolean;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) startedAt!: string | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) finishedAt!: string | null;
  @ApiProperty({ type: 'integer', nullable: true }) durationMs!: number | null;
  @ApiProperty({ type: TargetPhasesView }) phases!: TargetPhasesView;
  @ApiProperty({ type: String, nullable: true }) replicaId!: string | null;
  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    description: 'its rolling batch, when the job has one',
  })
  batch?: number;
}

export class ExecutionSummaryView {
  @ApiProperty({ type: 'integer', minimum: 0 }) total!: number;
  @ApiProperty({ type: 'integer', minimum: 0 }) succeeded!: number;
  @ApiProperty({ type: 'integer', minimum: 0 }) failed!: number;
  @ApiProperty({ type: 'integer', minimum: 0 }) timedOut!: number;
  @ApiProperty({ type: 'integer', minimum: 0 }) cancelled!: number;
  @ApiProperty({ type: 'integer', minimum: 0 }) skipped!: number;
}

export class ExecutionView {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ type: String, nullable: true }) name!: string | null;
  @ApiProperty({ type: String, nullable: true }) jobId!: string | null;
  @ApiProperty({ type: String, nullable: true }) eventId!: string | null;
  @ApiProperty({ type: String, nullable: true }) userId!: string | null;
  @ApiProperty({ type: String, format: 'uuid', nullable: true, description: 'the re-run one' })
  rerunOf!: string | null;
  @ApiProperty({ enum: [...EXECUTION_STATUSES] }) status!: string;
  @ApiProperty({ type: String, format: 'date-time' }) createdAt!: string;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) startedAt!: string | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) finishedAt!: string | null;
  @ApiPropertyOptional({ description: 'why the rest of its targets were skipped (batch halt)' })
  reason?: string;
  @ApiProperty({ type: ExecutionSummaryView }) summary!: ExecutionSummaryView;
  @ApiProperty({ type: [TargetView] }) targets!: TargetView[];
}

export class ExecutionPage {
  @ApiProperty({ type: [ExecutionView] }) items!: ExecutionView[];
  @ApiProperty({ type: String, nullable: true, description: 'pass as ?cursor= for the next page' })
  nextCursor!: string | null;
}

export class LogEntryView {
  @ApiProperty({ type: 'integer', minimum: 1 }) seq!: number;
  @ApiProperty({ type: String, format: 'uuid', nullable: true }) serverId!: string | null;
  @ApiProperty({ enum: [...LOG_STREAMS] }) stream!: string;
  @ApiProperty({ format: 'date-time' }) ts!: string;
  @ApiProperty({ type: String, nullable: true }) text!: string | null;
}

export class LogPage {
  @ApiProperty({ type: [LogEntryView] }) entries!: LogEntryView[];
  @ApiProperty({ type: 'integer', minimum: 0, description: 'pass as ?afterSeq= for what follows' })
  nextSeq!: number;
}
