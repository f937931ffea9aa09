import { sh } from './sshd';

/**
 * Command lines of live processes matching `pattern` — not zombies (PID 1 reaps slowly
 * here) and not the shell that runs pgrep, whose own command line contains the pattern.
 */
export async function alive(pattern: string): Promise<string[]> {
  const r = await sh(`pgrep -r S,R,D -a -f ${JSON.stringify(pattern)} || true`);
  return r.stdout.split('\n').filter((l) => l.trim() && !l.includes('pgrep'));
}

/** Polls `check` until it holds or `timeoutMs` passes; returns the last answer. */
export async function eventually(
  check: () => Promise<boolean>,
  timeoutMs = 10000,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return check();
}
