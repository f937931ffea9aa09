import { Injectable } from '@nestjs/common';
import { VariablesRepository } from '../persistence/variables.repository';

export const DEFAULT_SCOPE = 'default';

/** Runtime variables, scoped per userId and persisted. */
@Injectable()
export class VariablesService {
  constructor(private readonly repo: VariablesRepository) {}

  async get(userId: string, key: string): Promise<{ found: boolean; value: unknown }> {
    const row = await this.repo.find(userId, key);
    return row ? { found: true, value: row.value } : { found: false, value: undefined };
  }

  async set(userId: string, key: string, value: unknown): Promise<void> {
    await this.repo.save({ userId, key, value: value ?? null, updatedAt: Date.now() });
  }

  async remove(userId: string, key: string): Promise<boolean> {
    return this.repo.delete(userId, key);
  }

  /** Every variable of a scope (the bundled-mode snapshot). */
  async all(userId: string): Promise<Record<string, unknown>> {
    const rows = await this.repo.listScope(userId);
    return Object.fromEntries(rows.map((r) => [r.key, r.value]));
  }
}

/** Keys: 1..200 UTF-8 bytes, no control characters. */
export function validKey(key: string): boolean {
  const bytes = Buffer.byteLength(key);
  return bytes >= 1 && bytes <= 200 && !/[\u0000-\u001f\u007f]/.test(key);
}

/** "Stored as JSON when it parses as JSON, as a string otherwise." */
export function autoValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A string raw, anything else as JSON (what bash helpers print). */
export function rawRender(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value ?? null);
}
