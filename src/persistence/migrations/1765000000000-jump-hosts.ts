import { MigrationInterface, QueryRunner, TableColumn } from 'typeorm';

/**
 * A server may be reached through another inventory server (its jump host, ProxyJump).
 * A plain nullable id column: the service refuses unknown ids, cycles and deleting a
 * server others jump through (409), on SQLite and PostgreSQL alike.
 */
export class JumpHosts1765000000000 implements MigrationInterface {
  name = 'JumpHosts1765000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn(
      'servers',
      new TableColumn({ name: 'jumpServerId', type: 'varchar', length: '36', isNullable: true }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('servers', 'jumpServerId');
  }
}
