import { MigrationInterface, QueryRunner, TableColumn } from 'typeorm';

/**
 * A server's sudo password for jobs with `become` (write-only in the API), sealed with the
 * secrets key like its SSH credentials; null when it has none (passwordless sudo).
 */
export class Become1765100000000 implements MigrationInterface {
  name = 'Become1765100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn(
      'servers',
      new TableColumn({ name: 'becomePassword', type: 'text', isNullable: true }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('servers', 'becomePassword');
  }
}
