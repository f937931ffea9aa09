import { isIP } from 'node:net';
import { utils as sshUtils } from 'ssh2';
import { isUuid } from '../common/uuid';

/**
 * Field rules for the server inventory, shared by the DTO validators and the service.
 * Every check returns null when the value is fine, or a message that starts with the
 * field name and never echoes secret input.
 */

export const NAME_MAX = 200;
export const HOST_MAX = 255;
export const BASE_DIR_MAX = 200;
export const TAGS_MAX = 50;
export const PRIVATE_KEY_MAX = 64 * 1024;
export const SECRET_MAX = 1024;

export const USERNAME_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;
export const TAG_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
const CONTROL_RE = /[\p{Cc}\p{Zl}\p{Zp}]/u;
const HOST_LABEL_RE = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})$/;
const ZONE_RE = /^[A-Za-z0-9_.-]{1,64}$/;
const BASE_DIR_SEGMENT_RE = /^[A-Za-z0-9._-]+$/;

export { isUuid };

/** Another inventory server's id (a UUID); whether it exists is the service's question. */
export function checkServerId(v: unknown, field: string): string | null {
  return typeof v === 'string' && isUuid(v) ? null : `${field} must be a server id (a UUID)`;
}

export function checkName(v: unknown, field = 'name'): string | null {
  if (typeof v !== 'string') return `${field} must be a string`;
  if (v.length < 1 || v.length > NAME_MAX)
    return `${field} must be 1 to ${NAME_MAX} characters long`;
  if (CONTROL_RE.test(v)) return `${field} must not contain control characters or line breaks`;
  if (v.trim().length === 0) return `${field} must not be blank`;
  if (v.trim() !== v) return `${field} must not start or end with whitespace`;
  return null;
}

/** A DNS hostname (letters, digits, hyphens; dot-separated labels) or an IPv4/IPv6 literal. */
export function checkHost(v: unknown, field = 'host'): string | null {
  const bad = `${field} must be a hostname (letters, digits, dots and hyphens) or an IPv4/IPv6 address`;
  if (typeof v !== 'string' || v.length === 0) return bad;
  if (v.length > HOST_MAX) return `${field} must be at most ${HOST_MAX} characters long`;
  if (v.includes(':')) {
    // IPv6, optionally with a zone index (fe80::1%eth0)
    const [addr, zone, ...rest] = v.split('%');
    if (rest.length || isIP(addr) !== 6 || (zone !== undefined && !ZONE_RE.test(zone))) return bad;
    return null;
  }
  if (isIP(v) === 4) return null;
  if (/^[0-9.]+$/.test(v)) return bad; // looks like a broken IPv4 literal
  const labels = v.split('.');
  if (!labels.every((l) => HOST_LABEL_RE.test(l))) return bad;
  return null;
}

export function checkUsername(v: unknown, field = 'username'): string | null {
  if (typeof v !== 'string' || !USERNAME_RE.test(v)) {
    return `${field} must start with a letter or underscore and contain only letters, digits, '_', '.' and '-' (at most 64 characters)`;
  }
  return null;
}

export function checkTag(v: unknown, field = 'tags'): string | null {
  if (typeof v !== 'string' || !TAG_RE.test(v)) {
    return `${field} must hold 1 to 64 characters each from letters, digits, '_', '.', ':' and '-'`;
  }
  return null;
}

/**
 * The sudo password for `become`: it travels as one line to `sudo -S`, so no line break
 * or NUL byte; never echoed.
 */
export function checkBecomePassword(v: unknown, field = 'becomePassword'): string | null {
  if (typeof v !== 'string' || v.length < 1 || v.length > SECRET_MAX) {
    return `${field} must be a string of 1 to ${SECRET_MAX} characters`;
  }
  if (/[\0\r\n]/.test(v)) return `${field} must not contain line breaks or NUL bytes`;
  return null;
}

/** De-duplicates tags, keeping the first occurrence's position. */
export function normalizeTags(tags: readonly string[] | undefined | null): string[] {
  return [...new Set(tags ?? [])];
}

/**
 * The remote base directory is placed on remote command lines, so it is held to a strict
 * shape: `~`, `~/seg/…` or `/seg/…`, segments of [A-Za-z0-9._-], no `.`/`..`, no `//`.
 */
export function checkBaseDir(v: unknown, field = 'baseDir'): string | null {
  const bad = `${field} must be "~", "~/path" or an absolute "/path" whose segments use only letters, digits, '.', '_' and '-' (no "." or ".." segments, no "//", no trailing "/")`;
  if (typeof v !== 'string' || v.length === 0) return bad;
  if (v.length > BASE_DIR_MAX) return `${field} must be at most ${BASE_DIR_MAX} characters long`;
  if (v === '~') return null;
  let rest: string;
  if (v.startsWith('~/')) rest = v.slice(2);
  else if (v.startsWith('/')) rest = v.slice(1);
  else return bad;
  const segments = rest.split('/');
  for (const s of segments) {
    if (!BASE_DIR_SEGMENT_RE.test(s) || s === '.' || s === '..') return bad;
  }
  return null;
}

export type PrivateKeyCheck = { ok: true; type: string } | { ok: false; message: string };

/** Parses a private key with ssh2 (as the connection will); messages never echo the key. */
export function checkPrivateKey(
  key: unknown,
  passphrase?: unknown,
  field = 'privateKey',
): PrivateKeyCheck {
  if (typeof key !== 'string' || key.trim().length === 0) {
    return { ok: false, message: `${field} must be a non-empty string` };
  }
  if (key.length > PRIVATE_KEY_MAX) {
    return { ok: false, message: `${field} must be at most ${PRIVATE_KEY_MAX} characters long` };
  }
  const pass = typeof passphrase === 'string' && passphrase.length > 0 ? passphrase : undefined;
  let parsed: ReturnType<typeof sshUtils.parseKey>;
  try {
    parsed = sshUtils.parseKey(key, pass);
  } catch {
    return { ok: false, message: `${field}: cannot be parsed (wrong passphrase?)` };
  }
  if (parsed instanceof Error) {
    if (!pass && /passphrase/i.test(parsed.message) && /encrypt/i.test(parsed.message)) {
      return { ok: false, message: `${field}: is encrypted; give its passphrase` };
    }
    return { ok: false, message: `${field}: cannot be parsed (wrong passphrase?)` };
  }
  const one = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!one) return { ok: false, message: `${field}: cannot be parsed (wrong passphrase?)` };
  if (!one.isPrivateKey()) {
    return { ok: false, message: `${field}: is a public key; give the private key` };
  }
  return { ok: true, type: one.type };
}
