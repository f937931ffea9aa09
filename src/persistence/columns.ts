import { ValueTransformer } from 'typeorm';

/** Epoch milliseconds stored as bigint; PostgreSQL returns bigint as a string. */
export const epochMs: ValueTransformer = {
  to: (v: number | null | undefined) => v ?? null,
  from: (v: string | number | null) => (v == null ? null : Number(v)),
};

/** Nullable JSON stored as text, so one schema fits SQLite and PostgreSQL. */
export const jsonText: ValueTransformer = {
  to: (v: unknown) => (v === undefined ? null : JSON.stringify(v)),
  from: (v: string | null) => (v == null ? null : JSON.parse(v)),
};
