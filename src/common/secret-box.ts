import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HKDF_SALT = 'cronium-orchestrator/secret-box';
const HKDF_INFO = 'aes-256-gcm/v1';

/** Thrown when a sealed value cannot be opened (malformed, tampered, wrong key or wrong AAD). */
export class SecretBoxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretBoxError';
  }
}

/**
 * AES-256-GCM for secrets at rest. `seal` binds the ciphertext to an AAD (the owning
 * record's id), so a sealed value copied onto another record does not open there.
 * Format: `v1.<base64url iv>.<base64url tag>.<base64url ciphertext>`.
 */
export class SecretBox {
  private readonly key: Buffer;

  constructor(keyMaterial: string) {
    if (typeof keyMaterial !== 'string' || keyMaterial.length === 0) {
      throw new SecretBoxError('secret key material is empty');
    }
    this.key = /^[0-9a-fA-F]{64}$/.test(keyMaterial)
      ? Buffer.from(keyMaterial, 'hex')
      : Buffer.from(hkdfSync('sha256', Buffer.from(keyMaterial, 'utf8'), HKDF_SALT, HKDF_INFO, 32));
  }

  seal(plaintext: string, aad: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    return [VERSION, b64u(iv), b64u(tag), b64u(ciphertext)].join('.');
  }

  open(sealed: string, aad: string): string {
    const parts = typeof sealed === 'string' ? sealed.split('.') : [];
    if (parts.length !== 4 || parts[0] !== VERSION) {
      throw new SecretBoxError('sealed value is malformed or of an unknown version');
    }
    const [, ivText, tagText, ctText] = parts;
    const iv = fromB64u(ivText);
    const tag = fromB64u(tagText);
    const ciphertext = fromB64u(ctText);
    if (!iv || iv.length !== IV_BYTES || !tag || tag.length !== TAG_BYTES || !ciphertext) {
      throw new SecretBoxError('sealed value is malformed');
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(aad, 'utf8'));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretBoxError(
        'sealed value cannot be opened (tampered, wrong key, or sealed for another record)',
      );
    }
  }
}

function b64u(b: Buffer): string {
  return b.toString('base64url');
}

/** Strict base64url decoding: anything that does not round-trip is rejected. */
function fromB64u(s: string): Buffer | null {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) return null;
  const b = Buffer.from(s, 'base64url');
  return b.toString('base64url') === s ? b : null;
}
