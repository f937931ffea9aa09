import createClient, { type Client } from 'openapi-fetch';
import type { components, operations, paths } from './schema';

/*
 * A typed client of the HTTP API: openapi-fetch over the types `npm run client` generates
 * from the OpenAPI document (schema.d.ts). Every call is checked against the document:
 *
 *   const api = createCroniumClient('http://127.0.0.1:8089', token);
 *   const { data, error, response } = await api.POST('/v1/jobs', { body: { … } });
 *
 * `data` is the typed success body, `error` the typed error body (an ErrorBody).
 */

export type { components, operations, paths };
export type Schemas = components['schemas'];
export type ErrorBody = Schemas['ErrorBody'];
export type ServerView = Schemas['ServerView'];
export type ExecutionView = Schemas['ExecutionView'];
export type TargetView = Schemas['TargetView'];
export type LogPage = Schemas['LogPage'];
export type CroniumClient = Client<paths>;

export interface CroniumClientOptions {
  /** A fetch to use instead of the global one (tests, proxies). */
  fetch?: typeof fetch;
  /** Headers sent with every request, besides Authorization. */
  headers?: Record<string, string>;
}

/** A client of the service at `baseUrl` (e.g. `http://127.0.0.1:8089`), as `token`. */
export function createCroniumClient(
  baseUrl: string,
  token: string,
  options: CroniumClientOptions = {},
): CroniumClient {
  return createClient<paths>({
    baseUrl: baseUrl.replace(/\/+$/, ''),
    headers: { ...options.headers, Authorization: `Bearer ${token}` },
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
}
