import { Module } from '@nestjs/common';
import { AuthModule } from './auth/auth.module';
import { ConfigModule } from './config/config.module';
import { ExecutorModule } from './executor/executor.module';
import { HealthModule } from './health/health.module';
import { JobsModule } from './jobs/jobs.module';
import { LoggingModule } from './logging/logging.module';
import { MetricsModule } from './metrics/metrics.module';
import { NotificationsModule } from './notifications/notifications.module';
import { PersistenceModule } from './persistence/persistence.module';
import { RetentionModule } from './retention/retention.module';
import { RunnerCacheModule } from './runner-cache/runner-cache.module';
import { RuntimeHelpersModule } from './runtime-helpers/runtime-helpers.module';
import { ServersModule } from './servers/servers.module';
import { SshModule } from './ssh/ssh.module';
import { StatusModule } from './status/status.module';
import { TunnelModule } from './tunnel/tunnel.module';

@Module({
  imports: [
    ConfigModule,
    LoggingModule,
    PersistenceModule,
    MetricsModule,
    AuthModule,
    StatusModule,
    SshModule,
    ServersModule,
    RunnerCacheModule,
    TunnelModule,
    RuntimeHelpersModule,
    ExecutorModule,
    JobsModule,
    NotificationsModule,
    RetentionModule,
    HealthModule,
  ],
})
export class AppModule {}
