/**
 * The built service (`node dist/main.js`) as a child process, the way it runs in production:
 * its own port, a SQLite data dir and a service token. Used by the e2e tests that need a
 * real process (kill, SIGTERM), by `npm run demo` and by the benches (compiled with
 * tsconfig.scripts.json, so nothing here may depend on jest).
 */
import { ChildProcess, spawn, StdioOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort, type SshdInstance } from './sshd';

/** The repository root: the nearest folder above this file with a package.json (this file
 * runs from test/support under ts-jest and from .tmp/scripts/test/support once compiled). */
export const REPO_ROOT = findRoot(__dirname);
export const SERVICE_MAIN = path.join(REPO_ROOT, 'dist/main.js');

export const FINAL_STATUSES: readonly string[] = ['succeeded', 'failed', 'partial', 'cancelled'];
export const isFinal = (status: unknown) => FINAL_STATUSES.includes(status as string);

export interface ServiceProcessOptions {
  /** Extra environment on top of process.env, PORT, CRONIUM_DATA_DIR and CRONIUM_SERVICE_TOKENS. */
  env?: Record<string, string>;
  /** Default: a new temp dir, removed by stop(). A given dir is left alone. */
  dataDir?: string;
  /** Default: a random token. */
  token?: string;
  /** Default: a free port on 127.0.0.1. */
  port?: number;
  /** Default: ['ignore', 'ignore', 'inherit'] (the service's errors show, its log does not). */
  stdio?: StdioOptions;
}

export interface ApiResponse {
  status: number;
  /** Parsed JSON for a JSON answer, the text otherwise. */
  body: any;
}

export interface WaitOptions {
  /** Pause between GETs; default 25 ms. */
  pollMs?: number;
  /** Default: no limit. */
  timeoutMs?: number;
  /** Called with the execution after every GET (the final one included). */
  onPoll?: (execution: any) => void | Promise<void>;
}

export interface ServiceProcess {
  child: ChildProcess;
  port: number;
  /** http://127.0.0.1:<port> */
  base: string;
  token: string;
  dataDir: string;
  /** Bearer token and JSON content type. */
  headers: Record<string, string>;
  /** Resolves with the exit code once the process has exited (null when killed by a signal). */
  exited: Promise<number | null>;
  /** 'code <c>, signal <s>' once the process has exited, null while it runs. */
  exitStatus(): string | null;
  /** Throws if the process has exited. */
  assertRunning(): void;
  /** One REST call with the service token. */
  api(method: string, urlPath: string, body?: unknown): Promise<ApiResponse>;
  /** Waits until GET /health/ready answers 2xx; throws if the process exits first. */
  waitReady(timeoutMs?: number): Promise<void>;
  /**
   * Registers an sshd from the harness as a server (POST /v1/servers) with its client key
   * and its pinned host key; `extra` adds or overrides fields (`hostKey: undefined` leaves
   * the host key to trust on first use). Throws unless the answer is 200 or 201.
   */
  registerServer(sshd: SshdInstance, extra?: Record<string, unknown>): Promise<ApiResponse>;
  /** Polls GET /v1/executions/:id until a final status; returns the execution. */
  waitForExecution(id: string, opts?: WaitOptions): Promise<any>;
  /**
   * Sends `signal` (default SIGTERM) unless the process has exited, waits for the exit
   * (SIGKILL after killAfterMs, default 15 s) and removes the data dir if it made it.
   * Once only: later calls wait for the first.
   */
  stop(signal?: NodeJS.Signals, killAfterMs?: number): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function startServiceProcess(
  opts: ServiceProcessOptions = {},
): Promise<ServiceProcess> {
  const port = opts.port ?? (await freePort());
  const ownDataDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-service-'));
  const token = opts.token ?? 'svc-' + Math.random().toString(36).slice(2).padEnd(20, 'x');
  const child = spawn(process.execPath, [SERVICE_MAIN], {
    env: {
      ...process.env,
      PORT: String(port),
      CRONIUM_DATA_DIR: dataDir,
      CRONIUM_SERVICE_TOKENS: token,
      ...opts.env,
    },
    stdio: opts.stdio ?? ['ignore', 'ignore', 'inherit'],
  });
  let exit: string | null = null;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code, signal) => {
      exit = `code ${code}, signal ${signal}`;
      resolve(code);
    }),
  );

  const base = `http://127.0.0.1:${port}`;
  const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
  const assertRunning = () => {
    if (exit !== null) throw new Error(`service exited (${exit})`);
  };

  // Node's global fetch is undici with keep-alive on by default.
  const api = async (method: string, urlPath: string, body?: unknown): Promise<ApiResponse> => {
    const res = await fetch(base + urlPath, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    const json = text !== '' && res.headers.get('content-type')?.includes('json');
    return { status: res.status, body: json ? JSON.parse(text) : text };
  };

  const waitReady = async (timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (exit !== null) throw new Error(`service exited during startup (${exit})`);
      const ok = await fetch(`${base}/health/ready`).then(
        (r) => r.ok,
        () => false, // not listening yet
      );
      if (ok) return;
      if (Date.now() > deadline)
        throw new Error(`service did not become ready in ${timeoutMs / 1000} s`);
      await sleep(100);
    }
  };

  const registerServer = async (sshd: SshdInstance, extra: Record<string, unknown> = {}) => {
    const req = {
      name: `srv-${sshd.port}-${Math.random().toString(36).slice(2, 8)}`,
      host: sshd.host,
      port: sshd.port,
      username: sshd.username,
      privateKey: sshd.key.privateKey,
      hostKey: sshd.hostPublicKey,
      ...extra,
    };
    const res = await api('POST', '/v1/servers', req);
    if (res.status !== 201 && res.status !== 200)
      throw new Error(`POST /v1/servers ${req.name}: ${res.status} ${JSON.stringify(res.body)}`);
    return res;
  };

  const waitForExecution = async (id: string, wait: WaitOptions = {}) => {
    const { pollMs = 25, timeoutMs = Infinity, onPoll } = wait;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      assertRunning();
      const ex = (await api('GET', `/v1/executions/${id}`)).body;
      await onPoll?.(ex);
      if (isFinal(ex?.status)) return ex;
      if (Date.now() > deadline) throw new Error(`execution ${id} still ${ex?.status}`);
      await sleep(pollMs);
    }
  };

  let stopping: Promise<void> | undefined;
  const stop = (signal: NodeJS.Signals = 'SIGTERM', killAfterMs = 15_000) =>
    (stopping ??= (async () => {
      if (exit === null) {
        child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        await exited;
        clearTimeout(timer);
      }
      if (ownDataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    })());

  return {
    child,
    port,
    base,
    token,
    dataDir,
    headers,
    exited,
    exitStatus: () => exit,
    assertRunning,
    api,
    waitReady,
    registerServer,
    waitForExecution,
    stop,
  };
}

function findRoot(dir: string): string {
  for (let d = dir; ; d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, 'package.json'))) return d;
    if (path.dirname(d) === d) throw new Error(`no package.json above ${dir}`);
  }
}

/** Polls the execution's logs on `svc` until a line `text` is stored (10 s at most). */
export async function waitForLogLine(
  svc: ServiceProcess,
  id: string,
  text: string,
  timeoutMs = 10_000,
): Promise<void> {
  for (const until = Date.now() + timeoutMs; ; ) {
    const logs = await svc.api('GET', `/v1/executions/${id}/logs`);
    if (logs.body.entries?.some((e: any) => e.text === text)) return;
    if (Date.now() > until) throw new Error(`the script never printed ${text}`);
    await sleep(25);
  }
}
