import { Controller, Get, Param } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ExecutionNotificationsView } from './notify.dto';
import { NotificationsService } from './notifications.service';

@ApiTags('executions')
@ApiBearerAuth()
@Controller('executions')
export class NotificationsController {
  constructor(private readonly notifications: NotificationsService) {}

  @Get(':id/notifications')
  @ApiOperation({ summary: "The execution's completion notification and every delivery attempt" })
  @ApiOkResponse({ type: ExecutionNotificationsView })
  list(@Param('id') id: string): Promise<ExecutionNotificationsView> {
    return this.notifications.view(id);
  }
}
