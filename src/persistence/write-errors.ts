/** A write refused by a unique constraint (PostgreSQL 23505, SQLite UNIQUE). */
export function isUniqueViolation(e: unknown): boolean {
  const d = (e as any)?.driverError ?? e;
  return (
    d?.code === '23505' ||
    d?.code === 'SQLITE_CONSTRAINT_UNIQUE' ||
    /UNIQUE constraint failed|duplicate key value/i.test(String(d?.message ?? ''))
  );
}

/**
 * The database cannot be reached (refused, cut, timed out, shutting down): it passes.
 * PostgreSQL class 08 and 57P0x, socket errors.
 */
export function isDatabaseUnavailable(e: unknown): boolean {
  const d = (e as any)?.driverError ?? e;
  const code = String(d?.code ?? '');
  if (/^(08|57P0)/.test(code)) return true;
  if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND'].includes(code)) return true;
  return /Connection terminated|connection timeout|Connection refused/i.test(String(d?.message));
}

/** Worth writing again: the database is away, busy, or chose this transaction to abort. */
export function isTransientWriteError(e: unknown): boolean {
  const d = (e as any)?.driverError ?? e;
  const code = String(d?.code ?? '');
  return (
    isDatabaseUnavailable(e) ||
    ['SQLITE_BUSY', 'SQLITE_LOCKED', '40001', '40P01'].includes(code) ||
    /database is locked/i.test(String(d?.message))
  );
}
