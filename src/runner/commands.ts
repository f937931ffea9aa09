/**
 * The only command lines the service ever sends to a server. Each is a fixed template;
 * the variable parts are the artifact hash (hex), a run id (service-generated) and the
 * server's baseDir, which the inventory validates to `~`, `~/…` or `/…` made of
 * [A-Za-z0-9._-] segments and which is single-quoted here all the same.
 */
import { shellQuote } from './protocol';

const BASE_DIR_RE = /^(~|~\/[A-Za-z0-9._\-/]*|\/[A-Za-z0-9._\-/]*)$/;

/** baseDir → a shell word; `~` becomes "$HOME" so it expands on the server. */
export function shellPath(baseDir: string, ...rest: string[]): string {
  if (!BASE_DIR_RE.test(baseDir) || /(^|\/)\.\.?(\/|$)/.test(baseDir)) {
    throw new Error(`unsafe baseDir: ${baseDir}`);
  }
  for (const r of rest) {
    if (!/^[A-Za-z0-9._-]+$/.test(r) || r === '.' || r === '..')
      throw new Error(`unsafe path part: ${r}`);
  }
  const tail = [baseDir.replace(/^~\/?/, '').replace(/\/+$/, ''), ...rest]
    .filter(Boolean)
    .join('/');
  if (baseDir.startsWith('~')) return tail ? `"$HOME"/${shellQuote(tail)}` : '"$HOME"';
  return shellQuote('/' + tail.replace(/^\/+/, ''));
}

function assertHash(hash: string): void {
  if (!/^[0-9a-f]{64}$/.test(hash)) throw new Error('bad runner hash');
}

function assertRunId(id: string): void {
  if (!/^[A-Za-z0-9-]{1,64}$/.test(id)) throw new Error('bad run id');
}

export function runnerScriptPath(baseDir: string, hash: string): string {
  assertHash(hash);
  return shellPath(baseDir, 'runners', hash, 'runner.sh');
}

/**
 * Refuses (`CRONIUM2 error unsafe path (…): <path>`, exit 78) a base dir, or a directory
 * or file of ours under it, that another user owns or that group or others may write:
 * whoever can write there can swap the runner and read the next job's stdin (env values,
 * the helper token). Paths that do not exist yet are fine (deploy creates them 0700).
 * Ownership is the `-O` builtin; the mode bits cost one `find` (`-H`: a symlinked base
 * dir is judged by its target), and a server without `find` is refused (`tool missing:
 * find`). Runs before anything is written or executed there.
 */
function guard(base: string, hash: string | null): string {
  const ours = hash
    ? '"$B" "$B/runners" "$B/runs" "$R" "$R/runner.sh" "$R/helpers"'
    : '"$B" "$B/runners" "$B/runs"';
  return [
    `B=${base}`,
    ...(hash ? [`R="$B/runners/${hash}"`] : []),
    `set -- ${ours}`,
    `for p; do [ ! -e "$p" ] || [ -O "$p" ] || { echo "CRONIUM2 error unsafe path (owned by another user): $p"; exit 78; }; done`,
    // No find, no mode check: refuse rather than take an empty answer for a safe one. (No
    // apostrophe: this line shows in `ps` inside the login shell's single-quoted command.)
    'command -v find >/dev/null 2>&1 || { echo "CRONIUM2 error tool missing: find (checks the modes of the base directory)"; exit 78; }',
    'p=$(find -H "$@" -maxdepth 0 \\( -perm -020 -o -perm -002 \\) -print 2>/dev/null)',
    `[ -z "$p" ] || { echo "CRONIUM2 error unsafe path (writable by group or others): $p"; exit 78; }`,
  ].join('; ');
}

/** `exec sh <base>/runners/<hash>/runner.sh <verb…>`, after the guard. */
function runnerCommand(baseDir: string, hash: string, verb: string): string {
  return `${guard(shellPath(baseDir), hash)}; exec sh ${runnerScriptPath(baseDir, hash)} ${verb}`;
}

/** The bootstrap seen in `ps` once it runs: `sh <base>/runners/<hash>/runner.sh run`. */
export function runCommand(baseDir: string, hash: string): string {
  return runnerCommand(baseDir, hash, 'run');
}

/** Follows a run that already exists from the byte offsets received so far. */
export function attachCommand(
  baseDir: string,
  hash: string,
  runId: string,
  stdoutOffset: number,
  stderrOffset: number,
): string {
  assertRunId(runId);
  for (const n of [stdoutOffset, stderrOffset]) {
    if (!Number.isSafeInteger(n) || n < 0) throw new Error('bad offset');
  }
  return runnerCommand(baseDir, hash, `attach ${runId} ${stdoutOffset} ${stderrOffset}`);
}

export function collectCommand(baseDir: string, hash: string, runId: string): string {
  assertRunId(runId);
  return runnerCommand(baseDir, hash, `collect ${runId}`);
}

/**
 * Exit 0 when the base dir is safe (see guard) and the runner directory is present and
 * every file matches SHA256SUMS.
 */
export function verifyCommand(baseDir: string, hash: string): string {
  assertHash(hash);
  return `${guard(shellPath(baseDir), hash)}; ${janitor('"$B"')}; cd ${shellPath(baseDir, 'runners', hash)} 2>/dev/null && sha256sum -c --quiet SHA256SUMS >/dev/null 2>&1`;
}

/**
 * Removes what interrupted work left behind two days ago or more (longer than any job may
 * run): run directories whose `collect` never came (the connection dropped) and deploy
 * temp dirs of killed deploys. Runs only with deploy and re-verify, never on a job's hot
 * path.
 */
function janitor(base: string): string {
  return `find ${base}/runs ${base}/runners -mindepth 1 -maxdepth 1 -name '[A-Za-z0-9.]*' -mmin +2880 \\( -path '*/runs/*' -o -name '.deploy-*' \\) -exec rm -rf {} + 2>/dev/null`;
}

/**
 * Reads the artifact tar on stdin into a private temp dir, checks its sha256, extracts
 * and re-checks every file, then renames the directory into place in one step. Any
 * failure removes the temp dir (trap), so a failed deployment leaves nothing behind.
 * It answers `CRONIUM2 deployed`, or `CRONIUM2 error <why>` (see protocol.ts); an unsafe
 * base dir (see guard) is refused, exit 78, before anything is written there.
 */
export function deployCommand(baseDir: string, hash: string): string {
  assertHash(hash);
  const base = shellPath(baseDir);
  return [
    'umask 077',
    guard(base, hash),
    `H=${hash}`,
    'mkdir -p "$B/runners" || exit 71',
    'chmod 700 "$B" "$B/runners"',
    janitor('"$B"'),
    'T=$(mktemp -d "$B/runners/.deploy-XXXXXX") || exit 71',
    `trap 'rm -rf "$T"' EXIT`,
    'cat > "$T/a.tar" || exit 72',
    'echo "$H  $T/a.tar" | sha256sum -c --quiet >/dev/null 2>&1 || { echo "CRONIUM2 error artifact hash mismatch"; exit 73; }',
    'mkdir "$T/d" && tar -xf "$T/a.tar" -C "$T/d" || { echo "CRONIUM2 error cannot extract"; exit 74; }',
    '(cd "$T/d" && sha256sum -c --quiet SHA256SUMS >/dev/null 2>&1) || { echo "CRONIUM2 error extracted files do not verify"; exit 75; }',
    // Someone else finished the same deployment first: theirs is as good as ours.
    'if [ -d "$B/runners/$H" ] && (cd "$B/runners/$H" && sha256sum -c --quiet SHA256SUMS >/dev/null 2>&1); then echo "CRONIUM2 deployed"; exit 0; fi',
    '[ -e "$B/runners/$H" ] && { mv "$B/runners/$H" "$T/old" || exit 76; }',
    'mv "$T/d" "$B/runners/$H" || exit 77',
    'echo "CRONIUM2 deployed"',
  ].join('\n');
}

/**
 * Prints the runs directory as an absolute path without symlinks (made 0700 when
 * missing), where API-mode helper sockets live; after the guard, so nothing is printed
 * (exit 78) for a base dir that is not the SSH user's own and private.
 */
export function runsDirCommand(baseDir: string): string {
  return `${guard(shellPath(baseDir), null)}; umask 077; mkdir -p "$B/runs" 2>/dev/null; cd "$B/runs" 2>/dev/null && pwd -P`;
}

/** A helper socket under a runs directory: `/…/runs/<target id>.sock`. */
export const HELPER_SOCKET_RE = /^\/(?:[A-Za-z0-9._-]+\/)*runs\/[A-Za-z0-9-]{1,64}\.sock$/;

/** Removes a helper socket a lost connection left behind, so it can be forwarded again. */
export function removeSocketCommand(path: string): string {
  if (!HELPER_SOCKET_RE.test(path) || /(^|\/)\.\.?(\/|$)/.test(path)) {
    throw new Error(`unsafe socket path: ${path}`);
  }
  return `rm -f -- ${shellQuote(path)}`;
}
