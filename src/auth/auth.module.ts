import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ExecutionTokensService } from './execution-tokens.service';
import { ServiceTokenGuard } from './service-token.guard';
import { ServiceTokensService } from './service-tokens.service';

/** Caller authentication (service bearer tokens) and execution JWTs for running scripts. */
@Module({
  providers: [
    ServiceTokensService,
    ExecutionTokensService,
    { provide: APP_GUARD, useClass: ServiceTokenGuard },
  ],
  exports: [ServiceTokensService, ExecutionTokensService],
})
export class AuthModule {}
