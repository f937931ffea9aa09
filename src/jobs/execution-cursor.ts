import { BadRequestException } from '@nestjs/common';
import { isUuid } from '../common/uuid';

/** Where the next page of executions starts: just after this one, newest first. */
export interface ExecutionCursor {
  createdAt: number;
  id: string;
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** Opaque to clients: base64url of the JSON pair `[createdAt, id]`. */
export function encodeCursor(c: ExecutionCursor): string {
  return Buffer.from(JSON.stringify([c.createdAt, c.id]), 'utf8').toString('base64url');
}

/** Reads back what encodeCursor wrote; anything else is the caller's mistake (400). */
export function decodeCursor(cursor: string): ExecutionCursor {
  const bad = (why: string) =>
    new BadRequestException(`cursor is not a cursor this API returned: ${why}`);
  // Buffer.from skips characters outside the alphabet, so check the text round-trips.
  const bytes = BASE64URL.test(cursor) ? Buffer.from(cursor, 'base64url') : null;
  if (!bytes || bytes.toString('base64url') !== cursor) throw bad('not base64url');
  let pair: unknown;
  try {
    pair = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw bad('not JSON');
  }
  if (!Array.isArray(pair) || pair.length !== 2) throw bad('not a [createdAt, id] pair');
  const [createdAt, id] = pair as unknown[];
  if (typeof createdAt !== 'number' || !Number.isSafeInteger(createdAt) || createdAt < 0) {
    throw bad('createdAt is not a non-negative integer');
  }
  if (!isUuid(id)) throw bad('id is not a UUID');
  return { createdAt, id };
}
