import { MigrationInterface, QueryRunner, TableColumn } from 'typeorm';

/**
 * Durable work: each unfinished execution keeps its job (script, env, input) sealed with
 * the secrets key, so whichever replica or restart takes it over can still start the
 * targets that had not started; it is cleared when the execution ends. A cancel is kept
 * as a request, so it holds while the execution changes hands. An API-mode target keeps
 * the server-side port of its helper tunnel, which a take-over forwards again.
 */
export class DurableQueue1764700000000 implements MigrationInterface {
  name = 'DurableQueue1764700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumns('executions', [
      new TableColumn({ name: 'payload', type: 'text', isNullable: true }),
      new TableColumn({ name: 'cancelRequestedAt', type: 'bigint', isNullable: true }),
    ]);
    await q.addColumn(
      'execution_targets',
      new TableColumn({ name: 'tunnelPort', type: 'integer', isNullable: true }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('execution_targets', 'tunnelPort');
    await q.dropColumn('executions', 'cancelRequestedAt');
    await q.dropColumn('executions', 'payload');
  }
}
