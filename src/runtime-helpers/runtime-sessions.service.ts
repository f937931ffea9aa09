import { Injectable } from '@nestjs/common';
import type { ExecutionClaims } from '../auth/execution-tokens.service';
import type { ResolvedHelperMode } from '../executions/request';

export interface RuntimeContext {
  executionId: string;
  jobId: string;
  eventId: string | null;
  userId: string;
  serverId: string;
  serverName: string;
  helperMode: ResolvedHelperMode;
}

/** What one running target may see and what it has set. */
export interface RuntimeSession {
  targetId: string;
  context: RuntimeContext;
  input: unknown;
  output: { set: boolean; value: unknown };
  condition: boolean | null;
  tokens: number;
  refilledAt: number;
  /** Called after the script set its output or condition. */
  onChange?: () => void;
}

/**
 * The targets currently running in API mode. A token is honoured only while its target
 * is registered here, and only with claims matching the registration, so a token can
 * never reach another execution's data or outlive its target.
 */
@Injectable()
export class RuntimeSessionsService {
  private readonly sessions = new Map<string, RuntimeSession>();

  open(targetId: string, context: RuntimeContext, input: unknown, burst: number): RuntimeSession {
    const s: RuntimeSession = {
      targetId,
      context,
      input,
      output: { set: false, value: null },
      condition: null,
      tokens: burst,
      refilledAt: Date.now(),
    };
    this.sessions.set(targetId, s);
    return s;
  }

  close(targetId: string): RuntimeSession | undefined {
    const s = this.sessions.get(targetId);
    this.sessions.delete(targetId);
    return s;
  }

  /** The live session a verified token belongs to, or undefined. */
  forClaims(c: ExecutionClaims): RuntimeSession | undefined {
    const s = this.sessions.get(c.jti);
    if (!s) return undefined;
    const ctx = s.context;
    if (ctx.executionId !== c.executionId || ctx.serverId !== c.serverId) return undefined;
    if (ctx.jobId !== c.jobId || ctx.userId !== c.userId) return undefined;
    return s;
  }

  /** Token bucket per target: false when the call should get 429. */
  take(s: RuntimeSession, ratePerSecond: number, burst: number): boolean {
    const now = Date.now();
    s.tokens = Math.min(burst, s.tokens + ((now - s.refilledAt) / 1000) * ratePerSecond);
    s.refilledAt = now;
    if (s.tokens < 1) return false;
    s.tokens -= 1;
    return true;
  }
}
