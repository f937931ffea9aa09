import * as http from 'node:http';

export interface RawReply {
  status: number;
  /** The parsed JSON body, or the text when it is not JSON. */
  body: any;
  text: string;
  contentType: string;
}

/**
 * One HTTP request with the path sent exactly as given (fetch and superagent would
 * normalise `..` and `%2e%2e`), a body of any bytes, and a bounded wait.
 */
export function rawRequest(
  port: number,
  method: string,
  path: string,
  opts: { headers?: Record<string, string>; body?: string | Buffer; timeoutMs?: number } = {},
): Promise<RawReply> {
  const body = opts.body === undefined ? undefined : Buffer.from(opts.body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: false,
        headers: {
          ...(body ? { 'Content-Length': String(body.length) } : {}),
          ...opts.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            /* not JSON */
          }
          resolve({
            status: res.statusCode ?? 0,
            body: parsed,
            text,
            contentType: String(res.headers['content-type'] ?? ''),
          });
        });
      },
    );
    req.setTimeout(opts.timeoutMs ?? 15000, () =>
      req.destroy(new Error(`${method} ${path}: no answer within ${opts.timeoutMs ?? 15000} ms`)),
    );
    req.on('error', reject);
    req.end(body);
  });
}
