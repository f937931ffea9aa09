/**
 * The CLI's whole HTTP layer: one small typed wrapper around fetch. Every REST call the CLI
 * makes goes through `Api`; its types are the generated client's (src/client/), and the
 * calls stay on fetch so the built CLI needs no client library at run time.
 */

import type { ExecutionView, LogPage, Schemas, ServerView, TargetView } from '../client';

// The wire types are the generated client's (src/client/, `npm run client`), so a change of
// the document breaks the CLI's type check, not its users. A type-only import: the built CLI
// loads nothing of the client.
export type { ExecutionView, LogPage, ServerView, TargetView };
export type ScriptType = Schemas['ScriptDto']['type'];
export type ExecutionPage = Schemas['ExecutionPage'];
export type LogEntry = Schemas['LogEntryView'];
export type ServerCheckResult = Schemas['ServerCheckResult'];
export type JobRequest = Schemas['CreateJobDto'];
export type CreateServerRequest = Schemas['CreateServerDto'];

/** A failed call: `status` is the HTTP status, 0 when the service could not be reached. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

type Query = Record<string, string | number | boolean | string[] | undefined>;

export class Api {
  constructor(
    readonly baseUrl: string,
    private readonly token: string,
  ) {}

  listServers = () => this.call<ServerView[]>('GET', '/v1/servers');
  createServer = (body: CreateServerRequest) => this.call<ServerView>('POST', '/v1/servers', body);
  checkServer = (id: string) =>
    this.call<ServerCheckResult>('POST', `/v1/servers/${enc(id)}/check`);
  deleteServer = (id: string) => this.call<void>('DELETE', `/v1/servers/${enc(id)}`);

  submitJob = (body: JobRequest) => this.call<ExecutionView>('POST', '/v1/jobs', body);
  listExecutions = (q: { status?: string[]; serverId?: string; limit?: number; cursor?: string }) =>
    this.call<ExecutionPage>('GET', '/v1/executions', undefined, q);
  /** `wait` > 0: long-poll, answers once the execution has ended or after `wait` s. */
  getExecution = (id: string, wait?: number) =>
    this.call<ExecutionView>('GET', `/v1/executions/${enc(id)}`, undefined, { wait });
  cancel = (id: string) => this.call<ExecutionView>('POST', `/v1/executions/${enc(id)}/cancel`);
  rerun = (id: string, body: Schemas['RerunDto']) =>
    this.call<ExecutionView>('POST', `/v1/executions/${enc(id)}/rerun`, body);
  logs = (id: string, q: { afterSeq?: number; serverId?: string; limit?: number }) =>
    this.call<LogPage>('GET', `/v1/executions/${enc(id)}/logs`, undefined, q);

  /** ws(s)://…/v1/status for the websocket, from the REST base URL. */
  statusUrl(): string {
    return this.baseUrl.replace(/^http/, 'ws') + '/v1/status';
  }

  authHeader(): Record<string, string> {
    return { Authorization: `Bearer ${this.token}` };
  }

  private async call<T>(method: string, path: string, body?: unknown, query?: Query): Promise<T> {
    const url = this.baseUrl + path + queryString(query);
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: {
          ...this.authHeader(),
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new ApiError(
        0,
        `cannot reach ${this.baseUrl}: ${cause?.code ?? cause?.message ?? (e as Error).message}`,
      );
    }
    const text = await res.text();
    let parsed: unknown = undefined;
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    if (!res.ok) {
      const message =
        typeof parsed === 'object' && parsed !== null && 'message' in parsed
          ? String((parsed as { message: unknown }).message)
          : text || res.statusText;
      throw new ApiError(res.status, `${method} ${path}: ${res.status} ${message}`);
    }
    return parsed as T;
  }
}

const enc = encodeURIComponent;

function queryString(q?: Query): string {
  if (!q) return '';
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    // 0 is left out: it is the default of the numeric ones sent (afterSeq, wait).
    if (v === undefined || v === '' || v === 0) continue;
    if (Array.isArray(v)) v.forEach((x) => p.append(k, x));
    else p.append(k, String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}
