import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Another live process holds the SQLite file: the boot is refused (SQLite is single-node). */
export class DatabaseInUseError extends Error {}

interface LockOwner {
  pid: number;
  host: string;
  /** /proc start time of the pid, so a reused pid is not mistaken for the owner. */
  started: string | null;
}

function startTime(pid: number): string | null {
  try {
    // Field 22 of /proc/<pid>/stat, counted after the parenthesised command name.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function alive(owner: LockOwner): boolean {
  if (owner.host !== os.hostname()) return true; // cannot tell: assume it runs
  try {
    process.kill(owner.pid, 0);
  } catch (e: any) {
    if (e?.code === 'ESRCH') return false;
  }
  const started = startTime(owner.pid);
  return owner.started === null || started === null || started === owner.started;
}

function readOwner(file: string): LockOwner | null {
  try {
    const o = JSON.parse(fs.readFileSync(file, 'utf8'));
    return typeof o?.pid === 'number' && typeof o?.host === 'string' ? o : null;
  } catch {
    return null;
  }
}

/**
 * Takes `<database>.lock` for this process, so a second process on the same SQLite file
 * is refused at boot instead of closing the first one's executions and racing its
 * sequence numbers. A lock left by a dead process (kill -9) is taken over. Returns the
 * release function (also run at process exit); PostgreSQL URLs need no lock.
 */
export function lockSqliteDatabase(url: string): () => void {
  if (!url.startsWith('sqlite:')) return () => undefined;
  const file = url.slice('sqlite:'.length);
  if (file === ':memory:') return () => undefined;
  const lock = `${path.resolve(file)}.lock`;
  fs.mkdirSync(path.dirname(lock), { recursive: true });
  const me: LockOwner = { pid: process.pid, host: os.hostname(), started: startTime(process.pid) };
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(lock, JSON.stringify(me), { flag: 'wx', mode: 0o600 });
      break;
    } catch (e: any) {
      if (e?.code !== 'EEXIST' || attempt >= 2) throw e;
    }
    const owner = readOwner(lock);
    if (owner && alive(owner)) {
      throw new DatabaseInUseError(
        `the SQLite database ${file} is in use by another process (pid ${owner.pid} on ` +
          `${owner.host}); SQLite is single-node: stop that process, or run several ` +
          `replicas on DATABASE_URL=postgres://…`,
      );
    }
    fs.rmSync(lock, { force: true }); // stale (its process is gone) or unreadable
  }
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    if (readOwner(lock)?.pid === process.pid) fs.rmSync(lock, { force: true });
  };
  process.once('exit', release);
  return release;
}
