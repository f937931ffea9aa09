import { MigrationInterface, QueryRunner, TableColumn } from 'typeorm';

/**
 * Hardening: when and how each server's host key was pinned (given by the caller, or on
 * first use), and the hash of the request an Idempotency-Key was first used with (a
 * different request under the same key is refused).
 */
export class Hardening1764800000000 implements MigrationInterface {
  name = 'Hardening1764800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumns('servers', [
      new TableColumn({ name: 'hostKeyPinnedAt', type: 'bigint', isNullable: true }),
      new TableColumn({ name: 'hostKeySource', type: 'varchar', length: '8', isNullable: true }),
    ]);
    await q.addColumn(
      'executions',
      new TableColumn({ name: 'requestHash', type: 'varchar', length: '64', isNullable: true }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('executions', 'requestHash');
    await q.dropColumn('servers', 'hostKeySource');
    await q.dropColumn('servers', 'hostKeyPinnedAt');
  }
}
