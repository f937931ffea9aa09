import * as fs from 'node:fs';
import type { OpenAPIObject } from '@nestjs/swagger';
import { FINAL_EXECUTION_STATUSES, TARGET_STATUSES } from '../executions/statuses';
import { CLIENT_SCHEMA_FILE, clientSource } from './client-source';
import { buildDocuments } from './dump';

type Op = {
  security?: unknown[];
  parameters?: { name: string; in: string; required?: boolean }[];
  responses: Record<string, { content?: Record<string, { schema?: unknown }> }>;
};

describe('the OpenAPI document and the generated client', () => {
  let openapi: OpenAPIObject;
  let asyncapi: Record<string, any>;
  const ops: [string, string, Op][] = [];

  beforeAll(async () => {
    const docs = await buildDocuments();
    openapi = docs.openapi;
    asyncapi = docs.asyncapi;
    for (const [path, item] of Object.entries(openapi.paths)) {
      for (const [method, op] of Object.entries(item)) ops.push([method, path, op as Op]);
    }
  });

  it('src/client/schema.d.ts is what `npm run client` makes of the document (else run it)', async () => {
    const fresh = await clientSource(openapi);
    expect(fs.readFileSync(CLIENT_SCHEMA_FILE, 'utf8')).toBe(fresh);
  });

  it('describes every error status with the shared ErrorBody', () => {
    expect(ops.length).toBeGreaterThanOrEqual(18);
    for (const [method, path, op] of ops) {
      const errors = Object.entries(op.responses).filter(([s]) => Number(s) >= 400);
      expect({ op: `${method} ${path}`, has4xx: errors.some(([s]) => s < '500') }).toEqual({
        op: `${method} ${path}`,
        has4xx: true,
      });
      for (const [status, res] of errors) {
        // The probes answer 503 with terminus' own {status, info, error, details}.
        if (path.startsWith('/health/') && status === '503') continue;
        expect({
          op: `${method} ${path} ${status}`,
          schema: res.content?.['application/json'].schema,
        }).toEqual({
          op: `${method} ${path} ${status}`,
          schema: { $ref: '#/components/schemas/ErrorBody' },
        });
      }
    }
  });

  it('makes the Idempotency-Key optional and lists no Authorization parameter', () => {
    const headers = ops.flatMap(([, , op]) =>
      (op.parameters ?? []).filter((p) => p.in === 'header'),
    );
    expect(headers.map((h) => h.name).sort()).toEqual(['idempotency-key', 'idempotency-key']);
    expect(headers.every((h) => h.required === false)).toBe(true);
  });

  it('marks the probes public and every /v1 route as needing the (opaque) bearer token', () => {
    for (const [method, path, op] of ops) {
      expect({ op: `${method} ${path}`, security: op.security }).toEqual({
        op: `${method} ${path}`,
        security: path.startsWith('/v1/') ? [{ bearer: [] }] : [],
      });
    }
    expect(openapi.components?.securitySchemes?.bearer).not.toHaveProperty('bearerFormat');
  });

  it('types hostKey and baseDir as nullable strings, and counts as integers', () => {
    const schemas = openapi.components!.schemas as Record<string, any>;
    for (const dto of ['CreateServerDto', 'UpdateServerDto']) {
      for (const f of ['hostKey', 'baseDir']) {
        expect(schemas[dto].properties[f]).toMatchObject({ type: 'string', nullable: true });
      }
    }
    // Every number on the wire is whole; only the any-JSON unions (anyOf) admit fractions.
    const numbers: string[] = [];
    const walk = (node: unknown, at: string): void => {
      if (!node || typeof node !== 'object') return;
      if ((node as { type?: unknown }).type === 'number' && !/anyOf\.\d+$/.test(at))
        numbers.push(at);
      for (const [k, v] of Object.entries(node)) walk(v, `${at}.${k}`);
    };
    walk(openapi, '#');
    expect(numbers).toEqual([]);
    expect(schemas.TargetView.properties.exitCode).toMatchObject({ type: 'integer' });
  });

  it('serves the websocket protocol as AsyncAPI 3 with the shared status lists', () => {
    expect(asyncapi.asyncapi).toBe('3.0.0');
    expect(asyncapi.channels.status.address).toBe('/v1/status');
    const updates = asyncapi.components.messages.update.payload.properties.data.oneOf;
    expect(updates.map((u: any) => u.properties.type.const)).toEqual([
      'status',
      'log',
      'result',
      'summary',
      'end',
      'lagged',
    ]);
    expect(updates[0].properties.status.enum).toEqual([...TARGET_STATUSES]);
    expect(updates[3].properties.status.enum).toEqual([...FINAL_EXECUTION_STATUSES]);
  });
});
