import { Module } from '@nestjs/common';
import { TunnelService } from './tunnel.service';

/** Per-target SSH reverse tunnels onto the runtime-helper API. */
@Module({ providers: [TunnelService], exports: [TunnelService] })
export class TunnelModule {}
