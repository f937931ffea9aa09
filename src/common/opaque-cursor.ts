import { BadRequestException } from '@nestjs/common';

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** A page cursor, opaque to clients: base64url of a JSON value. */
export function encodeOpaque(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

/** The message of a 400 for a cursor this API did not return. */
export const badCursor = (why: string) =>
  new BadRequestException(`cursor is not a cursor this API returned: ${why}`);

/** The JSON value encodeOpaque wrote; anything else is the caller's mistake (400). */
export function decodeOpaque(cursor: string): unknown {
  // Buffer.from skips characters outside the alphabet, so check the text round-trips.
  const bytes = BASE64URL.test(cursor) ? Buffer.from(cursor, 'base64url') : null;
  if (!bytes || bytes.toString('base64url') !== cursor) throw badCursor('not base64url');
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    throw badCursor('not JSON');
  }
}
