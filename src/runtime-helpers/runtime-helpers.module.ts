import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { PersistenceModule } from '../persistence/persistence.module';
import { TunnelModule } from '../tunnel/tunnel.module';
import { RuntimeApiServer } from './runtime-api.server';
import { RuntimeHelpersService } from './runtime-helpers.service';
import { RuntimeSessionsService } from './runtime-sessions.service';
import { ToolActionsService } from './tool-actions.service';
import { VariablesController } from './variables.controller';
import { VariablesService } from './variables.service';

/** The helper API used by running scripts (through tunnels), bundled-mode results, variables. */
@Module({
  imports: [AuthModule, PersistenceModule, TunnelModule],
  controllers: [VariablesController],
  providers: [
    RuntimeHelpersService,
    RuntimeApiServer,
    RuntimeSessionsService,
    ToolActionsService,
    VariablesService,
  ],
  exports: [RuntimeHelpersService],
})
export class RuntimeHelpersModule {}
