import { createHash } from 'node:crypto';

/** A host key given by a caller could not be understood. The message never echoes the input. */
export class HostKeyFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HostKeyFormatError';
  }
}

export interface ParsedHostKey {
  /** `SHA256:<43 chars of unpadded base64>`, exactly as `ssh-keygen -lf` prints it. */
  fingerprint: string;
  /** Key type (`ssh-ed25519`, …) when a public key was given; null for a bare fingerprint. */
  type: string | null;
}

const FINGERPRINT_RE = /^SHA256:([A-Za-z0-9+/]{43})=?$/;
const KEY_TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9@._+-]{0,63}$/;
const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/;
/** Keys larger than this are not host keys (RSA 16384 is ~2 KiB). */
const MAX_BLOB_BYTES = 16 * 1024;

/** `SHA256:` + unpadded base64 of the sha256 of the key blob (OpenSSH's fingerprint). */
export function fingerprintOfBlob(blob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

/** The key type: the first SSH string (uint32 length + bytes) of the wire-format blob. */
export function keyTypeOfBlob(blob: Buffer): string {
  if (!Buffer.isBuffer(blob) || blob.length < 4) {
    throw new HostKeyFormatError('key blob is too short to hold a key type');
  }
  const len = blob.readUInt32BE(0);
  if (len === 0 || len > 64 || len > blob.length - 4) {
    throw new HostKeyFormatError('key blob does not start with a valid key type');
  }
  const type = blob.subarray(4, 4 + len).toString('latin1');
  if (!KEY_TYPE_RE.test(type)) {
    throw new HostKeyFormatError('key blob does not start with a valid key type');
  }
  return type;
}

/** Strict base64 → Buffer; null unless it round-trips (so typos are not silently accepted). */
function decodeBase64(s: string): Buffer | null {
  if (!BASE64_RE.test(s) || s.length % 4 !== 0) return null;
  const b = Buffer.from(s, 'base64');
  return b.toString('base64') === s ? b : null;
}

function parseFingerprint(s: string): ParsedHostKey {
  const m = FINGERPRINT_RE.exec(s);
  if (!m) {
    throw new HostKeyFormatError(
      'must be an OpenSSH public key line or a SHA256 fingerprint (SHA256: followed by 43 base64 characters)',
    );
  }
  const digest = decodeBase64(m[1] + '=');
  if (!digest || digest.length !== 32) {
    throw new HostKeyFormatError('is not a valid SHA256 fingerprint (bad base64)');
  }
  return { fingerprint: 'SHA256:' + m[1], type: null };
}

/** Tries `<type> <base64> …` starting at tokens[i]; null when that is not where the key is. */
function tryKeyAt(tokens: string[], i: number): ParsedHostKey | null {
  const type = tokens[i];
  const b64 = tokens[i + 1];
  if (type === undefined || b64 === undefined || !KEY_TYPE_RE.test(type)) return null;
  const blob = decodeBase64(b64);
  if (!blob) return null;
  if (blob.length > MAX_BLOB_BYTES) throw new HostKeyFormatError('public key is too large');
  let inner: string;
  try {
    inner = keyTypeOfBlob(blob);
  } catch {
    return null;
  }
  if (inner !== type) {
    throw new HostKeyFormatError(
      `public key type "${type}" does not match the type inside the key ("${inner}")`,
    );
  }
  return { fingerprint: fingerprintOfBlob(blob), type };
}

/**
 * Accepts a `SHA256:…` fingerprint, an OpenSSH public key line (`<type> <base64> [comment]`,
 * e.g. a host's `/etc/ssh/ssh_host_ed25519_key.pub`) or a known_hosts line
 * (`<hosts> <type> <base64> [comment]`), and returns the fingerprint to pin.
 */
export function parseHostKeyInput(input: string): ParsedHostKey {
  if (typeof input !== 'string') throw new HostKeyFormatError('must be a string');
  const s = input.trim();
  if (s.length === 0) throw new HostKeyFormatError('must not be empty');
  if (s.length > 32 * 1024) throw new HostKeyFormatError('is too long');
  if (s.includes('PRIVATE KEY')) {
    throw new HostKeyFormatError(
      "looks like a private key; give the server's public host key (e.g. /etc/ssh/ssh_host_ed25519_key.pub) or its SHA256 fingerprint",
    );
  }
  if (/[\r\n]/.test(s)) throw new HostKeyFormatError('must be a single line (one key)');
  if (s.startsWith('SHA256:')) return parseFingerprint(s);

  const tokens = s.split(/[ \t]+/);
  if (tokens[0].startsWith('@')) {
    throw new HostKeyFormatError(
      'known_hosts markers (@cert-authority, @revoked) are not supported; give a plain host key',
    );
  }
  if (tokens.length >= 2) {
    const parsed = tryKeyAt(tokens, 0) ?? tryKeyAt(tokens, 1);
    if (parsed) return parsed;
  }
  throw new HostKeyFormatError(
    'must be an OpenSSH public key line ("<type> <base64> [comment]") or a SHA256 fingerprint',
  );
}
