/**
 * Typings of the cronium runtime helpers for node scripts (cronium.js, contract in
 * docs/runtime-helpers.md).  The runner preloads the module, which sets
 * `globalThis.cronium`; `require('cronium')` returns the same object.
 */

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The execution context returned by `event()`. */
export interface CroniumContext {
  executionId: string;
  jobId: string;
  eventId: string | null;
  userId: string;
  serverId: string;
  serverName: string;
  helperMode: 'api' | 'bundled';
  [key: string]: unknown;
}

/** Every failure: bad argument, API error (`status` = HTTP status) or I/O error. */
export declare class CroniumError extends Error {
  name: 'CroniumError';
  status?: number;
  constructor(message: string, status?: number);
}

/** The job's input (any JSON value; null when there is none). */
export declare function input<T = Json>(): Promise<T>;
/** Sets the target's output (any JSON-serializable value). */
export declare function output(data: unknown): Promise<void>;
/** The variable's value, or undefined when it is unset. */
export declare function getVariable<T = Json>(key: string): Promise<T | undefined>;
/** Stores any JSON-serializable value under the user's scope. */
export declare function setVariable(key: string, value: unknown): Promise<void>;
/** The execution context. */
export declare function event(): Promise<CroniumContext>;
/** Sets the target's condition. */
export declare function setCondition(condition: boolean): Promise<void>;
/** Runs a tool action and returns its result (API mode only). */
export declare function toolAction<T = Json>(
  tool: string,
  action: string,
  params?: Json | object,
): Promise<T>;

declare global {
  /** The cronium runtime helpers, preloaded by the runner. */
  // eslint-disable-next-line no-var
  var cronium: typeof import('./cronium');
}
