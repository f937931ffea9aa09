/**
 * The live view at /ui (docs/ui.md) in real Chromium (Debian's /usr/bin/chromium driven by
 * playwright-core), against the built service as a process and three real sshd servers.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Browser, chromium, Page } from 'playwright-core';
import WebSocket from 'ws';
import { ServiceProcess, startServiceProcess } from './support/service-process';
import { SshdInstance, startSshd } from './support/sshd';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const TOKEN = 'ui-token-' + 'k'.repeat(24);

describe('live view /ui', () => {
  let sshds: SshdInstance[] = [];
  let svc: ServiceProcess;
  let browser: Browser;
  let serverIds: string[];
  let gateDir: string;
  let serviceOutput = '';

  beforeAll(async () => {
    sshds = await Promise.all([startSshd(), startSshd(), startSshd()]);
    svc = await startServiceProcess({
      token: TOKEN,
      // debug: the most the service ever logs, so the token check below means something
      env: { LOG_LEVEL: 'debug', LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    svc.child.stdout!.on('data', (b: Buffer) => (serviceOutput += b.toString()));
    svc.child.stderr!.on('data', (b: Buffer) => (serviceOutput += b.toString()));
    await svc.waitReady();
    serverIds = [];
    for (const [i, s] of sshds.entries()) {
      const res = await svc.registerServer(s, { name: `web-${i + 1}`, baseDir: `${s.dir}/base` });
      serverIds.push(res.body.id);
    }
    gateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-ui-gate-'));
    fs.chmodSync(gateDir, 0o755);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  });

  afterAll(async () => {
    await browser?.close();
    await svc?.stop();
    await Promise.all(sshds.map((s) => s.stop()));
    if (gateDir) fs.rmSync(gateDir, { recursive: true, force: true });
  });

  /** A page that records every URL it asks for and every console error. */
  async function openPage(): Promise<{ page: Page; urls: string[]; errors: string[] }> {
    const page = await browser.newPage({ viewport: { width: 1200, height: 720 } });
    const urls: string[] = [];
    const errors: string[] = [];
    page.on('request', (r) => urls.push(r.url()));
    page.on('websocket', (ws) => urls.push(ws.url()));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('response', (r) => r.status() >= 400 && errors.push(`${r.status()} ${r.url()}`));
    return { page, urls, errors };
  }

  const cell = (page: Page, i: number) => page.locator('#grid .cell').nth(i);
  const background = (page: Page, i: number) =>
    cell(page, i).evaluate((el) => getComputedStyle(el).backgroundColor);

  it('serves the page with a strict CSP and no inline code or external resource', async () => {
    const redirect = await fetch(`${svc.base}/ui`, { redirect: 'manual' });
    expect(redirect.status).toBe(301);
    expect(redirect.headers.get('location')).toBe('/ui/');
    const res = await fetch(`${svc.base}/ui/`);
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy') ?? '';
    for (const directive of [
      "default-src 'none'",
      "script-src 'self'",
      "style-src 'self'",
      "img-src 'self'",
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ])
      expect(csp).toContain(directive);
    expect(csp).toMatch(/connect-src 'self'/);
    expect(csp).not.toContain('unsafe');
    const html = await res.text();
    expect(html).not.toMatch(/<script>|<style|style=|\son[a-z]+=/i); // nothing inline
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//i); // nothing from elsewhere
    const js = await fetch(`${svc.base}/ui/app.js`);
    expect(js.headers.get('content-type')).toMatch(/javascript/);
    expect(js.headers.get('content-security-policy')).toBe(csp);
    const missing = await fetch(`${svc.base}/ui/../../etc/passwd`);
    expect(missing.status).toBe(404);
    const other = await fetch(`${svc.base}/ui/main.ts`);
    expect(other.status).toBe(404);
    expect((await other.json()).message).toMatch(/no such file/);
  });

  it('shows a 3-server job go from running to done live, with its log, and never puts the token in a URL', async () => {
    const { page, urls, errors } = await openPage();
    await page.goto(`${svc.base}/ui`);
    await page.fill('#token', TOKEN);
    await page.click('form.login button');
    await page.waitForSelector('#executions');
    expect(await page.evaluate(() => sessionStorage.getItem('cronium.token'))).toBe(TOKEN);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);

    const gate = path.join(gateDir, 'go');
    const job = await svc.api('POST', '/v1/jobs', {
      name: 'ui-demo',
      timeoutSeconds: 60,
      script: {
        type: 'bash',
        content:
          `echo "hello from $(hostname)"; echo "a warning" >&2; ` +
          `while [ ! -e ${gate} ]; do sleep 0.1; done; echo finished`,
      },
      targets: { serverIds },
    });
    expect(job.status).toBe(202);
    const id: string = job.body.id;

    // The list polls: the new execution shows up on its own, newest first.
    const row = page.locator(`#executions tr[data-id="${id}"]`);
    await row.waitFor({ timeout: 10_000 });
    expect(await page.locator('#executions tbody tr').first().getAttribute('data-id')).toBe(id);
    // Filters: by server (one of its targets) keeps it, by a status it does not have hides it.
    await page.selectOption('#filter-server', serverIds[1]);
    await row.waitFor();
    await page.selectOption('#filter-status', 'failed');
    await row.waitFor({ state: 'detached' });
    await page.selectOption('#filter-status', '');
    await row.click();

    await page.waitForSelector('#grid .cell');
    expect(await page.locator('#grid .cell').count()).toBe(3);
    // All three reach running and wait at the gate.
    await page.waitForFunction(
      () => document.querySelectorAll('#grid .cell.st-running').length === 3,
      undefined,
      { timeout: 30_000 },
    );
    const runningColour = await background(page, 0);
    expect(await cell(page, 0).locator('.status').textContent()).toBe('running');
    expect(await page.locator('#exec-status').textContent()).toBe('running');

    // The log of the first target opens on click and is live.
    await cell(page, 0).click();
    await page.waitForSelector('#log .line.stdout >> text=hello from');
    const stderrLine = page.locator('#log .line.stderr', { hasText: 'a warning' });
    await stderrLine.waitFor();
    const colours = await page.evaluate(() => {
      const c = (sel: string) => getComputedStyle(document.querySelector(sel)!).color;
      return { out: c('#log .line.stdout'), err: c('#log .line.stderr') };
    });
    expect(colours.out).not.toBe(colours.err);

    fs.writeFileSync(gate, '');
    await page.waitForFunction(
      () => document.querySelectorAll('#grid .cell.st-succeeded').length === 3,
      undefined,
      { timeout: 30_000 },
    );
    await page.waitForSelector('#log .line.stdout >> text=finished');
    expect(await page.locator('#exec-status').textContent()).toBe('succeeded');
    expect(await background(page, 0)).not.toBe(runningColour);
    expect(await page.locator('.counts').textContent()).toContain('3 succeeded');
    // The phase bar: the run phase has a width, its numbers are in the tooltip.
    const bar = cell(page, 0).locator('.phases');
    expect(await bar.getAttribute('title')).toMatch(/connect \d+ ms.*run [\d.]+ m?s/);
    const runWidth = await bar
      .locator('.ph-run')
      .evaluate((el) => el.getBoundingClientRect().width);
    expect(runWidth).toBeGreaterThan(0);

    const shot = process.env.UI_SCREENSHOT || path.join(gateDir, 'ui.png');
    await page.screenshot({ path: shot });
    expect(fs.statSync(shot).size).toBeGreaterThan(5000);

    expect(urls.some((u) => u.includes('/v1/status'))).toBe(true); // the websocket was used
    for (const u of urls) expect(u).not.toContain(TOKEN);
    expect(errors).toEqual([]); // CSP violations and script errors land here
    await page.close();
  });

  it('asks for the token again when the service refuses it', async () => {
    const { page } = await openPage();
    await page.goto(`${svc.base}/ui/`);
    await page.fill('#token', 'not-the-token');
    await page.click('form.login button');
    await page.waitForSelector('form.login .error');
    expect(await page.evaluate(() => sessionStorage.getItem('cronium.token'))).toBeNull();
    await page.close();
  });

  const connect = (opts: {
    protocols?: string[];
    headers?: Record<string, string>;
    query?: string;
  }) =>
    new Promise<{ protocol: string; code?: number; opened: boolean }>((resolve) => {
      const ws = new WebSocket(
        `ws://127.0.0.1:${svc.port}/v1/status${opts.query ?? ''}`,
        opts.protocols,
        {
          headers: opts.headers,
        },
      );
      let opened = false;
      ws.on('open', () => {
        opened = true;
        // A valid socket answers a bad message with an error; a refused one is closed.
        ws.send('{}');
      });
      ws.on('message', () => {
        resolve({ protocol: ws.protocol, opened });
        ws.close();
      });
      ws.on('close', (code) => resolve({ protocol: ws.protocol, code, opened }));
      ws.on('error', () => undefined);
    });

  it('websocket: takes the token as a subprotocol and answers with cronium.v1 only', async () => {
    const ok = await connect({ protocols: ['cronium.v1', `cronium.token.${TOKEN}`] });
    expect(ok).toEqual({ protocol: 'cronium.v1', opened: true });
    const bad = await connect({ protocols: ['cronium.v1', 'cronium.token.wrong'] });
    expect(bad.code).toBe(1008);
  });

  it('websocket: still takes the Authorization header and the token query', async () => {
    expect((await connect({ headers: { Authorization: `Bearer ${TOKEN}` } })).code).toBeUndefined();
    expect((await connect({ query: `?token=${TOKEN}` })).code).toBeUndefined();
    expect((await connect({})).code).toBe(1008);
  });

  // Last: after the page, the refused token and every websocket auth way above.
  it('never writes the token to its log, even at debug level', () => {
    expect(serviceOutput).toMatch(/"level"/); // it did log (JSON lines)
    expect(serviceOutput).not.toContain(TOKEN);
  });
});
