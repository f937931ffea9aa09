import { Controller, Get, Param } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiExecutionId } from '../openapi/errors';
import { notificationsExample } from '../openapi/examples';
import { ExecutionNotificationsView } from './notify.dto';
import { NotificationsService } from './notifications.service';

@ApiTags('executions')
@ApiBearerAuth()
@Controller('executions')
export class NotificationsController {
  constructor(private readonly notifications: NotificationsService) {}

  @Get(':id/notifications')
  @ApiOperation({
    summary: "The execution's completion notification and every delivery attempt",
    description: "Where the job's `notify` summary went, attempt by attempt.",
  })
  @ApiExecutionId()
  @ApiOkResponse({
    type: ExecutionNotificationsView,
    description: 'the notification (none when the job had no notify)',
    example: notificationsExample,
  })
  list(@Param('id') id: string): Promise<ExecutionNotificationsView> {
    return this.notifications.view(id);
  }
}
