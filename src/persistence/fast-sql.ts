import type { Database, Statement } from 'better-sqlite3';
import type { Pool, PoolClient } from 'pg';
import type { DataSource, EntityTarget, ObjectLiteral } from 'typeorm';
import type { BetterSqlite3Driver } from 'typeorm/driver/better-sqlite3/BetterSqlite3Driver';
import type { PostgresDriver } from 'typeorm/driver/postgres/PostgresDriver';

/** SQL written with `?` placeholders; PostgreSQL gets them numbered. */
type Params = unknown[];

/**
 * PostgreSQL prepared statements are named per connection, and a name must always mean
 * the same SQL: one name per SQL text for the whole process (every FastSql, every pool).
 */
const pgNames = new Map<string, { name: string; text: string }>();

interface Column {
  property: string;
  /** The column's quoted name. */
  sql: string;
  boolean: boolean;
  to: (v: unknown) => unknown;
  from: (v: unknown) => unknown;
}

/**
 * The statements of a job's hot path (a submit, each status change, a GET), prepared once
 * and run on the driver itself: TypeORM's query builder and entity hydration cost more
 * than the database does. The columns, their transformers and types come from the
 * entities' TypeORM metadata, so the mapping follows the schema.
 *
 * SQLite: better-sqlite3 statements, cached by their SQL (they run synchronously, inside
 * whatever transaction the one connection has open, like TypeORM's own queries).
 * PostgreSQL: named prepared statements on the pool.
 */
export class FastSql {
  private readonly sqlite: Database | null;
  private readonly pg: Pool | null;
  private readonly statements = new Map<string, Statement>();
  private readonly tables = new Map<EntityTarget<ObjectLiteral>, FastTable>();

  constructor(private readonly db: DataSource) {
    this.sqlite =
      db.options.type === 'better-sqlite3'
        ? ((db.driver as BetterSqlite3Driver).databaseConnection as Database)
        : null;
    this.pg =
      db.options.type === 'postgres' ? ((db.driver as PostgresDriver).master as Pool) : null;
  }

  /** The mapping of one entity's table. */
  table(entity: EntityTarget<ObjectLiteral>): FastTable {
    let t = this.tables.get(entity);
    if (!t) {
      t = new FastTable(this, this.db, entity, this.sqlite !== null);
      this.tables.set(entity, t);
    }
    return t;
  }

  /** Rows of a SELECT. */
  async all(sql: string, params: Params): Promise<Record<string, unknown>[]> {
    if (this.sqlite) return this.prepare(sql).all(...params) as Record<string, unknown>[];
    return (await this.pgQuery(this.pg!, sql, params)).rows;
  }

  /** Runs a write; the number of rows it changed. */
  async run(sql: string, params: Params): Promise<number> {
    if (this.sqlite) return this.prepare(sql).run(...params).changes;
    return (await this.pgQuery(this.pg!, sql, params)).rowCount ?? 0;
  }

  /** Runs writes in one transaction. */
  async transaction(steps: { sql: string; params: Params }[]): Promise<void> {
    if (this.sqlite) {
      const stmts = steps.map((s) => this.prepare(s.sql));
      this.sqlite.transaction(() => stmts.forEach((st, i) => st.run(...steps[i].params)))();
      return;
    }
    const client = await this.pg!.connect();
    try {
      await client.query('BEGIN');
      for (const s of steps) await this.pgQuery(client, s.sql, s.params);
      await client.query('COMMIT');
    } catch (e) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      client.release();
    }
  }

  private prepare(sql: string): Statement {
    let st = this.statements.get(sql);
    if (!st) {
      st = this.sqlite!.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  private pgQuery(on: Pool | PoolClient, sql: string, params: Params) {
    let named = pgNames.get(sql);
    if (!named) {
      let n = 0;
      named = {
        name: `cronium_fast_${pgNames.size + 1}`,
        text: sql.replace(/\?/g, () => `$${++n}`),
      };
      pgNames.set(sql, named);
    }
    return on.query({ ...named, values: params as any[] });
  }
}

/** One table: SELECT lists, row mapping and parameterized writes from a patch. */
export class FastTable {
  readonly name: string;
  private readonly columns: Column[];
  private readonly byProperty = new Map<string, Column>();
  /** Every column but those TypeORM does not select by default (`select: false`). */
  readonly selectList: string;
  private readonly selected: Column[];

  constructor(
    readonly sql: FastSql,
    db: DataSource,
    entity: EntityTarget<ObjectLiteral>,
    private readonly sqlite: boolean,
  ) {
    const meta = db.getMetadata(entity);
    this.name = `"${meta.tableName}"`;
    this.columns = meta.columns.map((c) => {
      const t = c.transformer && !Array.isArray(c.transformer) ? c.transformer : null;
      return {
        property: c.propertyName,
        sql: `"${c.databaseName}"`,
        boolean: c.type === 'boolean' || c.type === Boolean,
        to: t ? (v) => t.to(v) : (v) => v,
        from: t ? (v) => t.from(v) : (v) => v,
      };
    });
    for (const c of this.columns) this.byProperty.set(c.property, c);
    const hidden = new Set(meta.columns.filter((c) => !c.isSelect).map((c) => c.propertyName));
    this.selected = this.columns.filter((c) => !hidden.has(c.property));
    this.selectList = this.selected.map((c) => c.sql).join(', ');
  }

  /** A stored row as the entity TypeORM would have made of it. */
  fromRow<T>(row: Record<string, unknown>): T {
    const out: Record<string, unknown> = {};
    for (const c of this.selected) {
      let v = row[c.sql.slice(1, -1)];
      if (c.boolean && v != null) v = v === true || v === 1 || v === '1';
      out[c.property] = c.from(v ?? null);
    }
    return out as T;
  }

  /** A value as bound to a statement (SQLite has no booleans: 1 and 0). */
  param(property: string, value: unknown): unknown {
    const c = this.column(property);
    const v = c.to(value);
    if (c.boolean && this.sqlite && v != null) return v ? 1 : 0;
    return v ?? null;
  }

  /** `SET a = ?, b = ?` and its values, for the defined properties of a patch. */
  assignments(patch: Record<string, unknown>): { set: string; params: Params } {
    const parts: string[] = [];
    const params: Params = [];
    for (const [k, v] of Object.entries(patch)) {
      if (v === undefined) continue;
      parts.push(`${this.column(k).sql} = ?`);
      params.push(this.param(k, v));
    }
    return { set: parts.join(', '), params };
  }

  /** INSERT of whole rows (every defined property of the first row names the columns). */
  insert(rows: Record<string, unknown>[]): { sql: string; params: Params } {
    const keys = Object.keys(rows[0]).filter((k) => rows[0][k] !== undefined);
    const cols = keys.map((k) => this.column(k).sql).join(', ');
    const one = `(${keys.map(() => '?').join(', ')})`;
    return {
      sql: `INSERT INTO ${this.name} (${cols}) VALUES ${rows.map(() => one).join(', ')}`,
      params: rows.flatMap((r) => keys.map((k) => this.param(k, r[k]))),
    };
  }

  private column(property: string): Column {
    const c = this.byProperty.get(property);
    if (!c) throw new Error(`${this.name} has no column for property "${property}"`);
    return c;
  }
}
