import { MigrationInterface, QueryRunner, TableColumn } from 'typeorm';

/**
 * The remote Unix socket an API-mode python or node target's helpers reach the service
 * through (besides its loopback port), so that whoever takes the target over can forward
 * the same path again.
 */
export class TunnelSocket1764900000000 implements MigrationInterface {
  name = 'TunnelSocket1764900000000';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn(
      'execution_targets',
      new TableColumn({ name: 'tunnelSocket', type: 'varchar', length: '255', isNullable: true }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('execution_targets', 'tunnelSocket');
  }
}
