import { badCursor, decodeOpaque, encodeOpaque } from '../common/opaque-cursor';
import { isUuid } from '../common/uuid';

/** Where the next page of executions starts: just after this one, newest first. */
export interface ExecutionCursor {
  createdAt: number;
  id: string;
}

/** Opaque to clients: base64url of the JSON pair `[createdAt, id]`. */
export function encodeCursor(c: ExecutionCursor): string {
  return encodeOpaque([c.createdAt, c.id]);
}

/** Reads back what encodeCursor wrote; anything else is the caller's mistake (400). */
export function decodeCursor(cursor: string): ExecutionCursor {
  const pair = decodeOpaque(cursor);
  if (!Array.isArray(pair) || pair.length !== 2) throw badCursor('not a [createdAt, id] pair');
  const [createdAt, id] = pair as unknown[];
  if (typeof createdAt !== 'number' || !Number.isSafeInteger(createdAt) || createdAt < 0) {
    throw badCursor('createdAt is not a non-negative integer');
  }
  if (!isUuid(id)) throw badCursor('id is not a UUID');
  return { createdAt, id };
}
