import {
  ArgumentMetadata,
  BadRequestException,
  ValidationError,
  ValidationPipe,
} from '@nestjs/common';
import { Transform } from 'class-transformer';
import { Allow, ValidateIf } from 'class-validator';

function flatten(errors: ValidationError[], prefix = ''): string[] {
  const out: string[] = [];
  for (const e of errors) {
    const key = prefix ? `${prefix}.${e.property}` : e.property;
    for (const msg of Object.values(e.constraints ?? {})) {
      out.push(
        msg.startsWith(e.property) ? `${key}${msg.slice(e.property.length)}` : `${key}: ${msg}`,
      );
    }
    if (e.children?.length) out.push(...flatten(e.children, key));
  }
  return out;
}

/** What a free-form field's own check says is wrong with it (null: nothing). */
export type RawJsonCheck = (value: unknown) => string | null;

const RAW_FIELDS = new WeakMap<object, Map<string, RawJsonCheck | undefined>>();

/**
 * A field that holds the caller's JSON as it is (a job's `input`, a variable's `value`,
 * the `env` map). class-transformer never sees it: it drops keys named like
 * Object.prototype members (`toString`, `valueOf`, …), throws on a `constructor` key
 * and Nest strips `__proto__`, so such values would not round-trip or would be a 500.
 * `check`, when given, validates the value as it came (its message is the 400's).
 */
export function RawJson(check?: RawJsonCheck): PropertyDecorator {
  return (target: object, property: string | symbol) => {
    Allow()(target, property); // whitelisted: the pipe puts it back after validation
    const ctor = target.constructor;
    const fields = RAW_FIELDS.get(ctor) ?? new Map<string, RawJsonCheck | undefined>();
    fields.set(String(property), check);
    RAW_FIELDS.set(ctor, fields);
  };
}

/** Keys that class-transformer cannot carry: every own name of Object.prototype. */
const PROTOTYPE_KEYS = new Set(Object.getOwnPropertyNames(Object.prototype));

/** The path of the first key in `value` that class-transformer would drop or trip on. */
function prototypeKeyAt(value: unknown, at: string): string | null {
  if (value === null || typeof value !== 'object') return null;
  for (const k of Object.keys(value)) {
    const path = Array.isArray(value) ? `${at}[${k}]` : at ? `${at}.${k}` : k;
    if (!Array.isArray(value) && PROTOTYPE_KEYS.has(k)) return path;
    const found = prototypeKeyAt((value as Record<string, unknown>)[k], path);
    if (found) return found;
  }
  return null;
}

/**
 * Free-form fields (@RawJson) go around class-transformer and come back untouched;
 * elsewhere a key such as `constructor` or `__proto__` is an unknown field (a 400),
 * never silently dropped and never a 500.
 */
class JsonSafeValidationPipe extends ValidationPipe {
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      return super.transform(value, metadata);
    }
    const raw = (metadata.metatype && RAW_FIELDS.get(metadata.metatype)) || new Map();
    const kept = new Map<string, unknown>();
    const typed: [string, unknown][] = [];
    for (const [k, v] of Object.entries(value)) {
      if (raw.has(k)) kept.set(k, v);
      else typed.push([k, v]);
    }
    const bad = prototypeKeyAt(Object.fromEntries(typed), '');
    if (bad) throw new BadRequestException(`property ${bad} should not exist`);
    const problems: string[] = [];
    for (const [k, v] of kept) {
      const problem = raw.get(k)?.(v);
      if (problem) problems.push(problem);
    }
    let out: Record<string, unknown>;
    try {
      out = (await super.transform(Object.fromEntries(typed), metadata)) as Record<string, unknown>;
    } catch (e) {
      // one 400 names every mistake, the free-form fields' too
      if (!(e instanceof BadRequestException) || !problems.length) throw e;
      throw new BadRequestException([e.message, ...problems].join('; '));
    }
    if (problems.length) throw new BadRequestException(problems.join('; '));
    for (const [k, v] of kept) out[k] = v;
    return out;
  }
}

/** Unknown fields are refused; messages name the offending field by its full path. */
export function makeValidationPipe(): ValidationPipe {
  return new JsonSafeValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    exceptionFactory: (errors) => new BadRequestException(flatten(errors).join('; ')),
  });
}

/**
 * Optional, but not nullable: the rules still run on `null`, so `{"port": null}` is a 400
 * instead of silently meaning "absent".
 */
export const IsOptionalNotNull = (): PropertyDecorator => ValidateIf((_o, v) => v !== undefined);

/**
 * A query parameter that must be a plain decimal integer (no `0x10`, `1e3`, `+1`, empty
 * or 16+ digits): anything else becomes NaN, which @IsInt then refuses with its message.
 */
export const QueryInt = () =>
  Transform(({ value }) =>
    typeof value === 'string' && /^(0|[1-9][0-9]{0,14})$/.test(value) ? Number(value) : NaN,
  );
