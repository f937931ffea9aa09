import { Global, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AppConfig } from '../config/app-config';
import { dataSourceOptions } from './data-source-options';
import { ENTITIES } from './entities';
import { ExecutionsRepository } from './executions.repository';

/** The database (SQLite file by default, PostgreSQL by DATABASE_URL) and its entities. */
@Global()
@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      inject: [AppConfig],
      useFactory: (config: AppConfig) => dataSourceOptions(config.database.url),
    }),
    TypeOrmModule.forFeature(ENTITIES),
  ],
  providers: [ExecutionsRepository],
  exports: [TypeOrmModule, ExecutionsRepository],
})
export class PersistenceModule {}
