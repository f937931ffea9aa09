/** A write refused by a unique constraint (PostgreSQL 23505, SQLite UNIQUE). */
export function isUniqueViolation(e: unknown): boolean {
  const d = (e as any)?.driverError ?? e;
  return (
    d?.code === '23505' ||
    d?.code === 'SQLITE_CONSTRAINT_UNIQUE' ||
    /UNIQUE constraint failed|duplicate key value/i.test(String(d?.message ?? ''))
  );
}
