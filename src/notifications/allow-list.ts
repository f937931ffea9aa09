/**
 * Where a completion notification may be sent: `notifications.allowList` holds hosts
 * (`hooks.example.com` any port, `127.0.0.1:8080` that port) or URL prefixes
 * (`https://hooks.example.com/cronium/`: same scheme, host and port, and a path at or
 * under the prefix's). Only http and https; no credentials in the URL.
 */
export const ALLOW_ENTRY_RE =
  /^(https?:\/\/[^\s/?#]+(\/[^\s?#]*)?|[A-Za-z0-9.-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?)$/;

/** Why `url` may not be a notification target, or null when it may. */
export function notifyUrlProblem(url: string, allowList: readonly string[]): string | null {
  if (!allowList.length) {
    return 'notify is not available: notifications.allowList is empty';
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'notify.url must be an absolute http or https URL';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    return 'notify.url must be an http or https URL';
  }
  if (u.username || u.password) {
    return 'notify.url must not carry credentials (use notify.secret to sign instead)';
  }
  if (!allowList.some((entry) => allows(entry, u))) {
    return `notify.url ${shownUrl(url)} is not in notifications.allowList`;
  }
  return null;
}

function allows(entry: string, u: URL): boolean {
  if (/^https?:\/\//i.test(entry)) {
    let p: URL;
    try {
      p = new URL(entry);
    } catch {
      return false;
    }
    if (p.protocol !== u.protocol || p.host !== u.host) return false;
    if (p.pathname === '/' || u.pathname === p.pathname) return true;
    const dir = p.pathname.endsWith('/') ? p.pathname : `${p.pathname}/`;
    return u.pathname.startsWith(dir);
  }
  const e = entry.toLowerCase();
  // With a port it names that port (URL drops a scheme's default one: compare both ways).
  if (/:\d+$/.test(e)) {
    const port = u.port || (u.protocol === 'https:' ? '443' : '80');
    return e === `${u.hostname}:${port}`;
  }
  return e === u.hostname;
}

/** A URL as the API shows it: no credentials, query or fragment (they may hold tokens). */
export function shownUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(not a URL)';
  }
}
