import { MigrationInterface, QueryRunner, Table, TableColumnOptions, TableIndex } from 'typeorm';

type Kind = 'varchar36' | 'varchar16' | 'varchar128' | 'text' | 'integer' | 'bigint';
const TYPES: Record<Kind, Pick<TableColumnOptions, 'type' | 'length'>> = {
  varchar36: { type: 'varchar', length: '36' },
  varchar16: { type: 'varchar', length: '16' },
  varchar128: { type: 'varchar', length: '128' },
  text: { type: 'text' },
  integer: { type: 'integer' },
  bigint: { type: 'bigint' },
};
/** `name:kind`, `?` after the kind for nullable, `!` for part of the primary key. */
const columns = (...specs: string[]): TableColumnOptions[] =>
  specs.map((spec) => {
    const [name, rest] = spec.split(':');
    const kind = rest.replace(/[?!]/g, '') as Kind;
    return {
      name,
      ...TYPES[kind],
      isNullable: rest.includes('?'),
      isPrimary: rest.includes('!'),
    };
  });

/**
 * Completion notifications (one per execution whose job had `notify`) and their
 * delivery attempts; an index on executions.finishedAt for the retention sweep.
 * Written with the Table API so it runs on SQLite and PostgreSQL.
 */
export class Notifications1765400000000 implements MigrationInterface {
  name = 'Notifications1765400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'notifications',
        columns: columns(
          'id:varchar36!',
          'executionId:varchar36',
          'url:text',
          'secret:text?',
          'status:varchar16',
          'body:text?',
          'attempts:integer',
          'nextAttemptAt:bigint?',
          'claimedBy:varchar128?',
          'claimedAt:bigint?',
          'createdAt:bigint',
        ),
        indices: [
          { columnNames: ['executionId'], isUnique: true },
          { columnNames: ['status', 'nextAttemptAt'] },
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: 'notification_attempts',
        columns: columns(
          'notificationId:varchar36!',
          'attempt:integer!',
          'executionId:varchar36',
          'at:bigint',
          'httpStatus:integer?',
          'error:text?',
          'durationMs:integer',
        ),
        indices: [{ columnNames: ['executionId'] }],
      }),
    );
    await q.createIndex('executions', new TableIndex({ columnNames: ['finishedAt'] }));
  }

  async down(q: QueryRunner): Promise<void> {
    const executions = await q.getTable('executions');
    const index = executions?.indices.find(
      (i) => i.columnNames.length === 1 && i.columnNames[0] === 'finishedAt',
    );
    if (index) await q.dropIndex('executions', index);
    await q.dropTable('notification_attempts');
    await q.dropTable('notifications');
  }
}
