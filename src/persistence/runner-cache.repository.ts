import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, Repository } from 'typeorm';
import { RunnerCacheEntity } from './entities/runner-cache.entity';

/** Where which runner is known to be deployed. */
@Injectable()
export class RunnerCacheRepository {
  private readonly entries: Repository<RunnerCacheEntity>;

  constructor(@InjectDataSource() db: DataSource) {
    this.entries = db.getRepository(RunnerCacheEntity);
  }

  find(serverId: string, runnerHash: string): Promise<RunnerCacheEntity | null> {
    return this.entries.findOneBy({ serverId, runnerHash });
  }

  /** Inserts or replaces the entry of (serverId, runnerHash). */
  async save(entry: RunnerCacheEntity): Promise<void> {
    await this.entries.save(entry);
  }

  /** Every entry of a server. */
  async deleteServer(serverId: string): Promise<void> {
    await this.entries.delete({ serverId });
  }
}
