import { applyDecorators } from '@nestjs/common';
import { Transform } from 'class-transformer';
import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsISO8601, IsNotEmpty, IsOptional, IsString, Matches, MaxLength } from 'class-validator';

/**
 * A query parameter that may hold several values: `status=a&status=b` and `status=a,b`
 * both become `['a', 'b']`. Empty items stay (`status=a,` is `['a', '']`), so the
 * element rules refuse them.
 */
export const QueryList = () =>
  Transform(({ value }) => {
    const items = typeof value === 'string' ? [value] : value;
    if (!Array.isArray(items) || !items.every((v) => typeof v === 'string')) return value;
    return items.flatMap((v: string) => v.split(','));
  });

/** An optional `name` query parameter: a literal prefix of 1-200 characters, given once. */
export const NamePrefix = (what: string) =>
  applyDecorators(
    ApiPropertyOptional({
      maxLength: 200,
      description: `Only ${what} whose name starts with this (case-sensitive; no wildcards)`,
    }),
    IsOptional(),
    IsString({ message: 'name must be one string (give it once)' }),
    IsNotEmpty({ message: 'name must not be empty' }),
    MaxLength(200),
  );

/**
 * A query timestamp in RFC 3339 (`2026-01-31T12:00:00Z`, `…+02:00`, milliseconds
 * optional): a date alone or a time without an offset would depend on a time zone.
 */
export const QueryTimestamp = (property: string) =>
  applyDecorators(
    IsISO8601(
      { strict: true, strictSeparator: true },
      { message: `${property} must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z` },
    ),
    Matches(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?(Z|[+-]\d\d:\d\d)$/, {
      message: `${property} must be an RFC 3339 timestamp with seconds and an offset (Z or ±hh:mm)`,
    }),
  );

/**
 * A `name` prefix as the half-open range [from, to) in code-point order: every string
 * that starts with `prefix` and no other lies in it, so it is matched without LIKE (no
 * wildcard to escape: `%` and `_` are plain characters) and with an index. `to` is null
 * when no string is greater than every one with that prefix.
 */
export function prefixRange(prefix: string): { from: string; to: string | null } {
  const points = [...prefix];
  while (points.length) {
    const last = points.pop()!.codePointAt(0)!;
    if (last < 0x10ffff) {
      const next = last + 1 === 0xd800 ? 0xe000 : last + 1; // surrogates are no characters
      return { from: prefix, to: points.join('') + String.fromCodePoint(next) };
    }
  }
  return { from: prefix, to: null };
}
