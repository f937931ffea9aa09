import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ServiceTokenGuard } from './service-token.guard';
import { ServiceTokensService } from './service-tokens.service';

/** Caller authentication (service bearer tokens). Execution JWTs arrive with the helpers. */
@Module({
  providers: [ServiceTokensService, { provide: APP_GUARD, useClass: ServiceTokenGuard }],
  exports: [ServiceTokensService],
})
export class AuthModule {}
