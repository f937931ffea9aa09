import { Injectable } from '@nestjs/common';
import { createHash, timingSafeEqual } from 'node:crypto';
import { AppConfig } from '../config/app-config';

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Checks caller bearer tokens in constant time against CRONIUM_SERVICE_TOKENS. */
@Injectable()
export class ServiceTokensService {
  private readonly digests: Buffer[];

  constructor(config: AppConfig) {
    this.digests = config.auth.serviceTokens.map(digest);
  }

  isValid(token: string | undefined | null): boolean {
    if (!token) return false;
    const d = digest(token);
    let ok = false;
    for (const known of this.digests) ok = timingSafeEqual(d, known) || ok;
    return ok;
  }

  /**
   * Who is calling, without the secret: a short digest of the caller's token. Scopes what
   * one caller names (its Idempotency-Keys) away from another's.
   */
  static scopeOf(header: string | string[] | undefined): string {
    return digest(ServiceTokensService.fromHeader(header) ?? '')
      .toString('hex')
      .slice(0, 16);
  }

  /** `Authorization: Bearer <token>` → token, or undefined. */
  static fromHeader(header: string | string[] | undefined): string | undefined {
    const value = Array.isArray(header) ? header[0] : header;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(value ?? '');
    return m?.[1];
  }
}
