import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import type { RuntimeContext } from './runtime-sessions.service';

export class ToolActionError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Forwards tool actions to the configured platform endpoint, or to an allow-listed
 * webhook named by the tool. Nothing else is reachable from a script this way.
 */
@Injectable()
export class ToolActionsService {
  constructor(private readonly config: AppConfig) {}

  async run(ctx: RuntimeContext, tool: string, action: string, params: unknown): Promise<unknown> {
    const { endpoint, webhooks, timeoutMs } = this.config.toolActions;
    const url = Object.prototype.hasOwnProperty.call(webhooks, tool) ? webhooks[tool] : endpoint;
    if (!url) {
      throw new ToolActionError(
        400,
        `tool ${JSON.stringify(tool)} is not configured: set toolActions.endpoint or toolActions.webhooks.${tool}`,
      );
    }
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ tool, action, params: params ?? null, context: ctx }),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e: any) {
      throw new ToolActionError(502, `tool action ${tool}.${action} failed: ${e?.message ?? e}`);
    }
    const text = await res.text();
    if (!res.ok) {
      throw new ToolActionError(502, `tool action ${tool}.${action} answered ${res.status}`);
    }
    try {
      return text ? JSON.parse(text) : null;
    } catch {
      return text;
    }
  }
}
