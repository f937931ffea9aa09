import { MigrationInterface, QueryRunner, TableColumn } from 'typeorm';

/**
 * Rolling batches: each target's batch number (1-based; null when its job has no
 * `batch`), and the execution's reason when a rule skipped the rest of its targets.
 */
export class Batches1765300000000 implements MigrationInterface {
  name = 'Batches1765300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn(
      'execution_targets',
      new TableColumn({ name: 'batch', type: 'integer', isNullable: true }),
    );
    await q.addColumn(
      'executions',
      new TableColumn({ name: 'reason', type: 'text', isNullable: true }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('executions', 'reason');
    await q.dropColumn('execution_targets', 'batch');
  }
}
