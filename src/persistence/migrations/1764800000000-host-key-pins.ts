import { MigrationInterface, QueryRunner, TableColumn } from 'typeorm';

/** When and how each server's host key was pinned: given by the caller, or on first use. */
export class HostKeyPins1764800000000 implements MigrationInterface {
  name = 'HostKeyPins1764800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumns('servers', [
      new TableColumn({ name: 'hostKeyPinnedAt', type: 'bigint', isNullable: true }),
      new TableColumn({ name: 'hostKeySource', type: 'varchar', length: '8', isNullable: true }),
    ]);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('servers', 'hostKeySource');
    await q.dropColumn('servers', 'hostKeyPinnedAt');
  }
}
