import type { SchemaObject } from '@nestjs/swagger/dist/interfaces/open-api-spec.interface';

/**
 * Any JSON value (object, array, string, number, boolean or null), for `input`, `output`
 * and variable values. Written as a union because the property decorators would make a
 * schema without `type` into `type: object`; OpenAPI 3.0 allows `nullable` only beside a
 * `type`, so null rides on the object branch.
 */
export const ANY_JSON: { anyOf: SchemaObject[] } = {
  anyOf: [
    { type: 'object', additionalProperties: true, nullable: true },
    { type: 'array', items: {} },
    { type: 'string' },
    { type: 'number' },
    { type: 'boolean' },
  ],
};
