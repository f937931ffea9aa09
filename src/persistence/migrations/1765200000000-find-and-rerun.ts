import { MigrationInterface, QueryRunner, TableColumn, TableIndex } from 'typeorm';

/**
 * Finding executions and re-running them: each execution may name the one it re-runs
 * (`rerunOf`), and every filter of `GET /v1/executions` and `GET /v1/servers` has an
 * index. Name prefixes are matched as a range in code-point order (`>= prefix` and
 * `< the next prefix`): SQLite's BINARY collation is that order; on PostgreSQL the
 * queries and these indexes use `COLLATE "C"`, whatever the database's own collation.
 */
export class FindAndRerun1765200000000 implements MigrationInterface {
  name = 'FindAndRerun1765200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn(
      'executions',
      new TableColumn({ name: 'rerunOf', type: 'varchar', length: '36', isNullable: true }),
    );
    if (q.connection.options.type === 'postgres') {
      for (const [index, table, columns] of INDEXES) {
        const list = columns.map((c) => (c === 'name' ? '"name" COLLATE "C"' : `"${c}"`));
        await q.query(`CREATE INDEX "${index}" ON "${table}" (${list.join(', ')})`);
      }
    } else {
      // Through TypeORM, so that the table it keeps in memory knows them: a later
      // migration's addColumn rebuilds the table on SQLite from that and would drop them.
      for (const [name, table, columnNames] of INDEXES) {
        await q.createIndex(table, new TableIndex({ name, columnNames }));
      }
    }
  }

  async down(q: QueryRunner): Promise<void> {
    for (const [index, table] of INDEXES) await q.dropIndex(table, index);
    await q.dropColumn('executions', 'rerunOf');
  }
}

const INDEXES: [string, string, string[]][] = [
  ['IDX_executions_rerunOf', 'executions', ['rerunOf']],
  ['IDX_executions_jobId_createdAt', 'executions', ['jobId', 'createdAt']],
  ['IDX_executions_userId_createdAt', 'executions', ['userId', 'createdAt']],
  ['IDX_executions_eventId_createdAt', 'executions', ['eventId', 'createdAt']],
  ['IDX_executions_status_createdAt', 'executions', ['status', 'createdAt']],
  ['IDX_executions_name', 'executions', ['name']],
  ['IDX_execution_targets_serverId_executionId', 'execution_targets', ['serverId', 'executionId']],
  ['IDX_servers_name_prefix', 'servers', ['name']],
];
