import { MigrationInterface, QueryRunner, TableColumn } from 'typeorm';

/**
 * Re-attach after a drop or a restart: each log entry keeps the byte offset just past it
 * in its stream (the follower resumes from the last stored one), each target records the
 * replica that runs it, and each execution its owner and the owner's last heartbeat (an
 * owner gone quiet is taken over).
 */
export class Reattach1764600000000 implements MigrationInterface {
  name = 'Reattach1764600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn(
      'execution_events',
      new TableColumn({ name: 'byteOffset', type: 'bigint', isNullable: true }),
    );
    await q.addColumn(
      'execution_targets',
      new TableColumn({ name: 'replicaId', type: 'varchar', length: '128', isNullable: true }),
    );
    await q.addColumns('executions', [
      new TableColumn({ name: 'ownerId', type: 'varchar', length: '128', isNullable: true }),
      new TableColumn({ name: 'heartbeatAt', type: 'bigint', isNullable: true }),
    ]);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('executions', 'heartbeatAt');
    await q.dropColumn('executions', 'ownerId');
    await q.dropColumn('execution_targets', 'replicaId');
    await q.dropColumn('execution_events', 'byteOffset');
  }
}
