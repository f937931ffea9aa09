import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AppConfig } from '../config/app-config';
import { DatabaseProbe } from './database-probe';
import { dataSourceOptions } from './data-source-options';
import { ExecutionEventsRepository } from './execution-events.repository';
import { ExecutionsRepository } from './executions.repository';
import { RunnerCacheRepository } from './runner-cache.repository';
import { ServersRepository } from './servers.repository';
import { VariablesRepository } from './variables.repository';

const REPOSITORIES = [
  ExecutionsRepository,
  ExecutionEventsRepository,
  ServersRepository,
  RunnerCacheRepository,
  VariablesRepository,
  DatabaseProbe,
];

/**
 * The database (SQLite file by default, PostgreSQL by DATABASE_URL), one repository per
 * aggregate. TypeORM stays in here: other modules see the repositories' named methods only.
 */
@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      inject: [AppConfig],
      useFactory: (config: AppConfig) => dataSourceOptions(config.database.url),
    }),
  ],
  providers: REPOSITORIES,
  exports: REPOSITORIES,
})
export class PersistenceModule {}
