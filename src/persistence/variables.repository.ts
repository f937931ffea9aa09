import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, Repository } from 'typeorm';
import { VariableEntity } from './entities/variable.entity';

/** Runtime variables, keyed by (userId, key). */
@Injectable()
export class VariablesRepository {
  private readonly variables: Repository<VariableEntity>;

  constructor(@InjectDataSource() db: DataSource) {
    this.variables = db.getRepository(VariableEntity);
  }

  /** Every variable of a scope, ordered by key. */
  listScope(userId: string): Promise<VariableEntity[]> {
    return this.variables.find({ where: { userId }, order: { key: 'ASC' } });
  }

  find(userId: string, key: string): Promise<VariableEntity | null> {
    return this.variables.findOneBy({ userId, key });
  }

  /**
   * Inserts or replaces the variable. Not `save()`: it deep-merges the entity first, which
   * drops a value's `__proto__` keys and any object under a key such as `toString`.
   */
  async save(variable: VariableEntity): Promise<void> {
    await this.variables.upsert(variable as any, ['userId', 'key']);
  }

  /** False when there was no such variable. */
  async delete(userId: string, key: string): Promise<boolean> {
    const r = await this.variables.delete({ userId, key });
    return (r.affected ?? 0) > 0;
  }
}
