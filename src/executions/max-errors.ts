/** A count stays a count; "N%" becomes floor(N% of the targets). */
export function resolveMaxErrors(
  v: number | string | null | undefined,
  total: number,
): number | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'number') return v;
  return Math.floor((Number(v.slice(0, -1)) / 100) * total);
}
