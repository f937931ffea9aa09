import * as http from 'node:http';
import * as https from 'node:https';

export interface DeliveryResult {
  /** The HTTP status, when a response came. */
  httpStatus: number | null;
  /** Why the attempt failed; null on a 2xx. */
  error: string | null;
  durationMs: number;
}

/**
 * One POST of `body`, bounded by `timeoutMs` from connect to the end of the response.
 * Redirects are not followed (a 3xx is a failed attempt); no connection is kept.
 */
export function postOnce(
  url: string,
  body: string,
  headers: Record<string, string>,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<DeliveryResult> {
  const started = performance.now();
  const took = () => Math.round(performance.now() - started);
  return new Promise((resolve) => {
    let settled = false;
    const done = (httpStatus: number | null, error: string | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve({ httpStatus, error, durationMs: took() });
    };
    const u = new URL(url);
    const client = u.protocol === 'https:' ? https : http;
    const req = client.request(u, {
      method: 'POST',
      agent: false,
      headers: { ...headers, 'Content-Length': String(Buffer.byteLength(body)) },
    });
    const timer = setTimeout(() => {
      req.destroy();
      done(null, `no response within ${timeoutMs} ms`);
    }, timeoutMs);
    const onAbort = () => {
      req.destroy();
      done(null, 'interrupted: the service stopped');
    };
    signal.addEventListener('abort', onAbort, { once: true });
    req.on('error', (e: NodeJS.ErrnoException) => done(null, e.code ?? e.message));
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      const finish = () => {
        if (status >= 200 && status < 300) done(status, null);
        else if (status >= 300 && status < 400)
          done(status, `HTTP ${status}: redirects are not followed`);
        else done(status, `HTTP ${status}`);
      };
      res.on('end', finish);
      res.on('error', () => finish());
    });
    req.end(body);
  });
}
