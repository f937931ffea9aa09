import type { DataSource, ObjectLiteral, SelectQueryBuilder } from 'typeorm';

/** A half-open range [from, to) of names; `to` null: no upper end (see prefixRange). */
export interface NameRange {
  from: string;
  to: string | null;
}

/**
 * `alias.name` compared in code-point order on both databases: SQLite's BINARY collation
 * is that order; PostgreSQL is told `COLLATE "C"` (with an index of that collation,
 * migration FindAndRerun1765200000000), whatever the database's own collation.
 */
export function nameColumn(db: DataSource, alias: string): string {
  return db.options.type === 'postgres' ? `${alias}.name COLLATE "C"` : `${alias}.name`;
}

/** Narrows `qb` to names in `range` (a prefix, matched without LIKE and its wildcards). */
export function whereNameIn<T extends ObjectLiteral>(
  qb: SelectQueryBuilder<T>,
  column: string,
  range: NameRange,
): SelectQueryBuilder<T> {
  qb.andWhere(`${column} >= :nameFrom`, { nameFrom: range.from });
  if (range.to !== null) qb.andWhere(`${column} < :nameTo`, { nameTo: range.to });
  return qb;
}
