import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, FindOptionsWhere, In, IsNull, Repository } from 'typeorm';
import { ServerEntity } from './entities/server.entity';
import { FastSql, FastTable } from './fast-sql';
import { nameColumn, NameRange, whereNameIn } from './name-prefix';

/** The endpoint a host key was seen on: a pin is only learned while the server still has it. */
export type ServerEndpointFields = Pick<ServerEntity, 'host' | 'port' | 'username'>;

/** All reads and writes of the server inventory. */
@Injectable()
export class ServersRepository {
  private readonly servers: Repository<ServerEntity>;
  /** A job's read of its server (by id) is a prepared statement (FastSql). */
  private readonly fast: FastTable;

  constructor(@InjectDataSource() db: DataSource) {
    this.servers = db.getRepository(ServerEntity);
    this.fast = new FastSql(db).table(ServerEntity);
  }

  async insert(server: ServerEntity): Promise<void> {
    await this.servers.insert(server);
  }

  /**
   * Servers ordered by name (code-point order), with a name in `name` (a prefix range) and
   * after `afterName` when given. Tags are filtered by the caller.
   */
  list(q: { name?: NameRange; afterName?: string } = {}): Promise<ServerEntity[]> {
    const col = nameColumn(this.servers.manager.connection, 's');
    const qb = this.servers.createQueryBuilder('s').orderBy(col, 'ASC');
    if (q.name) whereNameIn(qb, col, q.name);
    if (q.afterName !== undefined) qb.andWhere(`${col} > :afterName`, { afterName: q.afterName });
    return qb.getMany();
  }

  async findById(id: string): Promise<ServerEntity | null> {
    const t = this.fast;
    const [row] = await t.sql.all(`SELECT ${t.selectList} FROM ${t.name} WHERE "id" = ?`, [id]);
    return row ? t.fromRow<ServerEntity>(row) : null;
  }

  findByName(name: string): Promise<ServerEntity | null> {
    return this.servers.findOneBy({ name });
  }

  async findByIds(ids: string[]): Promise<ServerEntity[]> {
    if (ids.length === 1) {
      const one = await this.findById(ids[0]);
      return one ? [one] : [];
    }
    return this.servers.findBy({ id: In(ids) });
  }

  /**
   * Servers carrying any of the tags. Tags live in a JSON text column (one schema for
   * SQLite and PostgreSQL); the inventory is small enough to filter here.
   */
  async findByAnyTag(tags: ReadonlySet<string>): Promise<ServerEntity[]> {
    const rows = await this.servers.find();
    return rows.filter((r) => (r.tags ?? []).some((t) => tags.has(t)));
  }

  /** False when no server has that id. */
  async update(id: string, patch: Partial<ServerEntity>): Promise<boolean> {
    const res = await this.servers.update({ id }, patch);
    return res.affected !== 0;
  }

  /** The servers reached through `jumpServerId` (ordered by name). */
  findByJump(jumpServerId: string): Promise<ServerEntity[]> {
    return this.servers.find({ where: { jumpServerId }, order: { name: 'ASC' } });
  }

  /** False when no server has that id. */
  async delete(id: string): Promise<boolean> {
    const res = await this.servers.delete({ id });
    return !!res.affected;
  }

  /**
   * Pins a host key if the server has none yet (conditional UPDATE … WHERE
   * hostKeyFingerprint IS NULL, so the first caller wins); with `expect`, only while the
   * server still points at that endpoint. True when this call pinned it.
   */
  async pinHostKeyIfUnset(
    id: string,
    key: { fingerprint: string; type: string | null },
    expect?: ServerEndpointFields,
  ): Promise<boolean> {
    const where: FindOptionsWhere<ServerEntity> = { id, hostKeyFingerprint: IsNull() };
    if (expect)
      Object.assign(where, { host: expect.host, port: expect.port, username: expect.username });
    const res = await this.servers.update(where, {
      hostKeyFingerprint: key.fingerprint,
      hostKeyType: key.type,
      hostKeyPinnedAt: Date.now(),
      hostKeySource: 'tofu',
    });
    return res.affected === 1;
  }

  /** Records the key type of a key pinned by fingerprint alone (no-op once it is known). */
  async setHostKeyTypeIfUnset(id: string, fingerprint: string, type: string): Promise<void> {
    await this.servers.update(
      { id, hostKeyFingerprint: fingerprint, hostKeyType: IsNull() },
      { hostKeyType: type },
    );
  }
}
