import { constants } from 'node:os';

const BY_NUMBER = new Map<number, string>(
  Object.entries(constants.signals).map(([name, n]) => [n as number, name]),
);

/** `sh` reports death by signal n as 128+n; map it back to the signal's name. */
export function signalFromShellStatus(code: number | null): string | null {
  if (code == null || code <= 128 || code > 128 + 64) return null;
  return BY_NUMBER.get(code - 128) ?? null;
}

/** ssh's exit-signal names come without the SIG prefix. */
export function normalizeSignal(name: string | null | undefined): string | null {
  if (!name) return null;
  return name.startsWith('SIG') ? name : `SIG${name}`;
}
