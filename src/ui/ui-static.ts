import type { Express, NextFunction, Request, Response } from 'express';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The read-only live view at `/ui` (docs/ui.md): a static page bundled by esbuild at build
 * time (`npm run build:ui` → dist/ui/web). Public like /docs: the page holds no data, it
 * asks for a service token and calls the authenticated REST API and websocket itself.
 */

/** The files the page is made of; nothing else under /ui is served. */
const FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' },
  '/favicon.svg': { file: 'favicon.svg', type: 'image/svg+xml' },
};

/** A Host header the CSP may quote: host name or IP literal and an optional port. */
const SAFE_HOST = /^(?:[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::\d{1,5})?$/i;

/** Strict: the page's own script, style and API only; no inline code, frames or forms. */
export function uiCsp(host: string | undefined): string {
  // 'self' covers same-origin ws:/wss: in CSP 3; the explicit origins help older engines.
  const ws = host && SAFE_HOST.test(host) ? ` ws://${host} wss://${host}` : '';
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    `connect-src 'self'${ws}`,
    "img-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** Where the bundle is: dist/ui/web next to the compiled file, or the repo's dist from src/. */
function bundleDir(): string | undefined {
  const candidates = [
    path.join(__dirname, 'web'),
    path.resolve(__dirname, '..', '..', 'dist', 'ui', 'web'),
  ];
  return candidates.find((d) => fs.existsSync(path.join(d, 'app.js')));
}

export function serveUi(app: Express): void {
  const dir = bundleDir();
  const cache = new Map<string, Buffer>();
  app.use('/ui', (req: Request, res: Response, next: NextFunction) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    // `/ui` itself: the page's relative asset URLs need the trailing slash.
    if (req.originalUrl.split('?')[0] === '/ui') return res.redirect(301, '/ui/');
    const entry = FILES[req.path];
    res.setHeader('Content-Security-Policy', uiCsp(req.headers.host));
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('X-Frame-Options', 'DENY');
    if (!entry || !dir) {
      const message = !dir
        ? 'the live view is not built: run `npm run build`'
        : `no such file: /ui${req.path}`;
      return res.status(404).json({ statusCode: 404, error: 'Not Found', message });
    }
    let body = cache.get(entry.file);
    if (!body) cache.set(entry.file, (body = fs.readFileSync(path.join(dir, entry.file))));
    res.setHeader('Cache-Control', 'no-cache');
    res.type(entry.type).send(body);
  });
}
