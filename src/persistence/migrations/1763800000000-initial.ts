import { MigrationInterface, QueryRunner, Table, TableColumnOptions } from 'typeorm';

/** Written with the Table API so the same migration runs on SQLite and PostgreSQL. */
const id = (name = 'id'): TableColumnOptions => ({
  name,
  type: 'varchar',
  length: '36',
  isPrimary: true,
});
const str = (name: string, length: number, nullable = false): TableColumnOptions => ({
  name,
  type: 'varchar',
  length: String(length),
  isNullable: nullable,
});
const text = (name: string, nullable = false): TableColumnOptions => ({
  name,
  type: 'text',
  isNullable: nullable,
});
const int = (name: string, nullable = false): TableColumnOptions => ({
  name,
  type: 'integer',
  isNullable: nullable,
});
const ms = (name: string, nullable = false): TableColumnOptions => ({
  name,
  type: 'bigint',
  isNullable: nullable,
});
const bool = (name: string, nullable = false, dflt?: boolean): TableColumnOptions => ({
  name,
  type: 'boolean',
  isNullable: nullable,
  ...(dflt === undefined ? {} : { default: dflt }),
});

export class Initial1763800000000 implements MigrationInterface {
  name = 'Initial1763800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'servers',
        columns: [
          id(),
          { ...str('name', 200), isUnique: true },
          str('host', 255),
          int('port'),
          str('username', 64),
          str('authType', 16),
          text('credentials'),
          str('hostKeyFingerprint', 100, true),
          str('hostKeyType', 64, true),
          text('tags'),
          str('baseDir', 255, true),
          ms('createdAt'),
          ms('updatedAt'),
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: 'executions',
        columns: [
          id(),
          str('name', 200, true),
          str('jobId', 200, true),
          str('eventId', 200, true),
          str('userId', 200, true),
          str('status', 16),
          { ...str('idempotencyKey', 200, true), isUnique: true },
          text('request'),
          ms('createdAt'),
          ms('startedAt', true),
          ms('finishedAt', true),
        ],
        indices: [{ columnNames: ['createdAt', 'id'] }, { columnNames: ['status'] }],
      }),
    );
    await q.createTable(
      new Table({
        name: 'execution_targets',
        columns: [
          id(),
          str('executionId', 36),
          int('position'),
          str('serverId', 36),
          str('serverName', 200),
          str('status', 16),
          int('exitCode', true),
          str('signal', 16, true),
          str('errorCode', 40, true),
          text('errorMessage', true),
          str('helperMode', 16, true),
          text('fallbackReason', true),
          text('output', true),
          bool('condition', true),
          bool('truncated', false, false),
          ms('startedAt', true),
          ms('finishedAt', true),
          text('phases'),
        ],
        indices: [{ columnNames: ['executionId', 'position'] }, { columnNames: ['status'] }],
      }),
    );
    await q.createTable(
      new Table({
        name: 'execution_events',
        columns: [
          { ...str('executionId', 36), isPrimary: true },
          { ...int('seq'), isPrimary: true },
          str('type', 16),
          str('serverId', 36, true),
          int('logSeq', true),
          str('stream', 8, true),
          ms('ts'),
          text('text', true),
          text('data', true),
        ],
        indices: [{ columnNames: ['executionId', 'logSeq'] }],
      }),
    );
    await q.createTable(
      new Table({
        name: 'runner_cache',
        columns: [
          { ...str('serverId', 36), isPrimary: true },
          { ...str('runnerHash', 64), isPrimary: true },
          str('baseDir', 255),
          ms('deployedAt'),
          ms('verifiedAt'),
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: 'variables',
        columns: [
          { ...str('userId', 200), isPrimary: true },
          { ...str('key', 200), isPrimary: true },
          text('value'),
          ms('updatedAt'),
        ],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    for (const t of [
      'variables',
      'runner_cache',
      'execution_events',
      'execution_targets',
      'executions',
      'servers',
    ]) {
      await q.dropTable(t);
    }
  }
}
