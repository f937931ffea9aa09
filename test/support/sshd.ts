/**
 * Test harness: real OpenSSH sshd processes on loopback (SPEC §5).
 *
 * Each startSshd() gets its own temp dir holding a fresh ed25519 host key, an
 * authorized_keys file (shared by every user), the config, the pid file and the
 * VERBOSE log. sshd runs in the foreground (-D) as a child of the test process;
 * stop() / stopAll() end it, and an 'exit' handler plus a tiny watchdog make sure a
 * crashed or killed test run never leaves a listener behind.
 */
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import {
  appendFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  writeFile,
  chmod,
} from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { SshEndpoint } from '../../src/ssh/ssh.types';

export interface SshdOptions {
  /** AllowTcpForwarding yes|no; default true. */
  allowTcpForwarding?: boolean;
  /** MaxSessions; default 10. */
  maxSessions?: number;
  /** MaxStartups; default '100:30:200'. */
  maxStartups?: string;
  /** PasswordAuthentication yes|no; default true. */
  passwordAuth?: boolean;
  /** Lines appended verbatim to the generated sshd_config. */
  extraConfig?: string;
  /**
   * sshd LogLevel; default VERBOSE. DEBUG1 also logs every channel open
   * (`server_input_channel_open: ctype session …`), which the benches count.
   */
  logLevel?: 'VERBOSE' | 'DEBUG1' | 'DEBUG2' | 'DEBUG3';
}

export interface KeyPair {
  /** OpenSSH-format private key (PEM-ish text). */
  privateKey: string;
  /** OpenSSH public key line: '<type> <base64> <comment>'. */
  publicKey: string;
  passphrase?: string;
  type: 'ed25519' | 'rsa';
  /** Path of the private key file inside the instance dir (mode 0600), handy for `ssh -i`. */
  privateKeyPath?: string;
}

export interface SshdInstance {
  host: string;
  port: number;
  username: string;
  /** ed25519 client key without passphrase, already in authorized_keys. */
  key: KeyPair;
  /** '<type> <base64>' of the host key (no comment), ready for a known_hosts line. */
  hostPublicKey: string;
  /** 'SHA256:<base64 without padding>', exactly as `ssh-keygen -lf` prints it. */
  hostKeyFingerprint: string;
  pid: number;
  dir: string;
  /** Path of the generated sshd_config. */
  configPath: string;
  addClientKey(type: 'ed25519' | 'rsa', passphrase?: string): Promise<KeyPair>;
  killConnections(): Promise<void>;
  /**
   * A frozen host: SIGSTOPs the listener and every per-connection sshd (TCP stays up, the
   * kernel still accepts, nothing answers). The commands the sessions started keep running.
   */
  freeze(): Promise<void>;
  /** SIGCONTs what freeze() stopped. */
  thaw(): Promise<void>;
  /**
   * A crashed sshd: SIGKILLs the listener and every per-connection sshd; the port refuses
   * until restart(). Commands the sessions started are left running.
   */
  crash(): Promise<void>;
  /** Starts sshd again on the same port, with the same host key and config. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  logs(): string;
}

export const SSHD_PATH = '/usr/sbin/sshd';
export const SSH_KEYGEN_PATH = '/usr/bin/ssh-keygen';
export const SFTP_SERVER_PATH = '/usr/lib/openssh/sftp-server';
export const TEST_USER = 'cronium-test';
export const TEST_USER_PASSWORD = 'Cr0nium-test-pass!';

const READY_TIMEOUT_MS = 10_000;
const BIND_ATTEMPTS = 5;

// ---------------------------------------------------------------------------
// Registry shared across module instances (jest re-evaluates modules per test file
// inside the same worker process), so the exit handler is registered only once.
// ---------------------------------------------------------------------------

interface Registry {
  running: Set<RunningSshd>;
  exitHandlerInstalled: boolean;
}

interface RunningSshd {
  child: ChildProcess;
  watchdog?: ChildProcess;
  dir: string;
  stop(): Promise<void>;
}

const REGISTRY_KEY = Symbol.for('cronium.test.sshd.registry');

function registry(): Registry {
  const g = globalThis as unknown as Record<symbol, Registry | undefined>;
  let reg = g[REGISTRY_KEY];
  if (!reg) {
    reg = { running: new Set(), exitHandlerInstalled: false };
    g[REGISTRY_KEY] = reg;
  }
  if (!reg.exitHandlerInstalled) {
    reg.exitHandlerInstalled = true;
    const r = reg;
    process.on('exit', () => {
      for (const s of r.running) {
        try {
          s.child.kill('SIGKILL');
        } catch {
          /* already gone */
        }
        killGroup(s.watchdog);
        try {
          rmSync(s.dir, { recursive: true, force: true });
        } catch {
          /* best effort */
        }
      }
      r.running.clear();
    });
  }
  return reg;
}

/** SIGKILLs a detached child's whole process group (the watchdog's sh and its tail). */
function killGroup(child: ChildProcess | undefined): void {
  if (!child?.pid) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

/** Stops every sshd started by this process. */
export async function stopAll(): Promise<void> {
  const reg = registry();
  await Promise.all([...reg.running].map((s) => s.stop()));
}

// ---------------------------------------------------------------------------
// Small process helpers
// ---------------------------------------------------------------------------

interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs a program without a shell; never rejects on a non-zero exit. */
function run(
  file: string,
  args: string[],
  opts: { input?: string; timeoutMs?: number } = {},
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err && typeof (err as NodeJS.ErrnoException).code === 'string') {
          reject(new Error(`${file} ${args.join(' ')}: ${err.message}`));
          return;
        }
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ stdout, stderr, code });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

async function runOk(
  file: string,
  args: string[],
  opts: { input?: string; timeoutMs?: number } = {},
): Promise<string> {
  const r = await run(file, args, opts);
  if (r.code !== 0) {
    throw new Error(
      `${file} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`,
    );
  }
  return r.stdout;
}

/**
 * Runs a local shell command (/bin/sh -c). Resolves with its output and exit code
 * (never rejects for a non-zero exit). On timeout (default 30 s) the command's process
 * group is SIGKILLed and code is 124, like coreutils `timeout`.
 */
export function sh(cmd: string, opts: { timeoutMs?: number } = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', cmd], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, opts.timeoutMs ?? 30_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        resolve({
          stdout,
          stderr: stderr + `\n[sh: timed out after ${opts.timeoutMs ?? 30_000} ms]`,
          code: 124,
        });
      } else {
        resolve({
          stdout,
          stderr,
          code: code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1),
        });
      }
    });
  });
}

/** A TCP port on 127.0.0.1 that was free a moment ago (listen on 0, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('freePort: unexpected server address'));
        return;
      }
      const { port } = addr;
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// /proc process-tree helpers
// ---------------------------------------------------------------------------

interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
  startTime: string;
}

async function readProc(pid: number): Promise<ProcInfo | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const open = stat.indexOf('(');
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(open + 1, close);
    const rest = stat.slice(close + 2).split(' ');
    // rest[0] = state (field 3), rest[1] = ppid (field 4), rest[19] = starttime (field 22)
    if (rest[0] === 'Z' || rest[0] === 'X') return undefined; // zombie: effectively gone
    return { pid, ppid: Number(rest[1]), comm, startTime: rest[19] };
  } catch {
    return undefined;
  }
}

async function listProcs(): Promise<ProcInfo[]> {
  const entries = await readdir('/proc');
  const infos = await Promise.all(
    entries.filter((e) => /^\d+$/.test(e)).map((e) => readProc(Number(e))),
  );
  return infos.filter((p): p is ProcInfo => p !== undefined);
}

async function descendants(rootPid: number): Promise<ProcInfo[]> {
  const procs = await listProcs();
  const byParent = new Map<number, ProcInfo[]>();
  for (const p of procs) {
    const list = byParent.get(p.ppid) ?? [];
    list.push(p);
    byParent.set(p.ppid, list);
  }
  const out: ProcInfo[] = [];
  const queue = [rootPid];
  while (queue.length > 0) {
    const pid = queue.shift() as number;
    for (const c of byParent.get(pid) ?? []) {
      out.push(c);
      queue.push(c.pid);
    }
  }
  return out;
}

/**
 * Processes whose command line names a path under `dir`: the runners this instance's
 * sessions started, which detach from sshd on purpose (a script outlives its channel on
 * a lease, and the runner lingers after it).
 */
async function processesUnder(dir: string): Promise<ProcInfo[]> {
  const procs = await listProcs();
  const hits = await Promise.all(
    procs.map(async (p) => {
      const cmd = await readFile(`/proc/${p.pid}/cmdline`, 'utf8').catch(() => '');
      return cmd.includes(`${dir}/`) && p.pid !== process.pid ? p : undefined;
    }),
  );
  return hits.filter((p): p is ProcInfo => p !== undefined);
}

async function isSameProcAlive(p: ProcInfo): Promise<boolean> {
  const now = await readProc(p.pid);
  return now !== undefined && now.startTime === p.startTime;
}

/**
 * TERM first, then (after `graceMs` at most) KILL what is left. A login shell killed
 * outright in the middle of its dot files can leave their locks behind: root's `pyenv
 * rehash` holds `~/.pyenv/shims/.pyenv-shim` for a moment at every login, and a stale one
 * makes every later login wait 60 s for it (PYENV_REHASH_TIMEOUT). On TERM it removes it.
 */
async function termThenKill(procs: ProcInfo[], graceMs = 300): Promise<void> {
  signal(procs, 'SIGTERM');
  await killAndWait(await aliveAfter(procs, graceMs));
}

async function killAndWait(procs: ProcInfo[], timeoutMs = 5_000): Promise<void> {
  signal(procs, 'SIGKILL');
  if ((await aliveAfter(procs, timeoutMs)).length) {
    throw new Error(`processes still alive after SIGKILL: ${procs.map((p) => p.pid).join(', ')}`);
  }
}

function signal(procs: ProcInfo[], sig: NodeJS.Signals): void {
  for (const p of procs) {
    try {
      process.kill(p.pid, sig);
    } catch {
      /* already gone */
    }
  }
}

/** Those of `procs` still alive once they are all gone or `timeoutMs` has passed. */
async function aliveAfter(procs: ProcInfo[], timeoutMs: number): Promise<ProcInfo[]> {
  const deadline = Date.now() + timeoutMs;
  let left = procs;
  for (;;) {
    const alive = await Promise.all(left.map(isSameProcAlive));
    left = left.filter((_, i) => alive[i]);
    if (!left.length || Date.now() > deadline) return left;
    await sleep(20);
  }
}

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

async function generateKey(
  file: string,
  type: 'ed25519' | 'rsa',
  comment: string,
  passphrase = '',
): Promise<KeyPair> {
  const args = ['-q', '-t', type, '-N', passphrase, '-C', comment, '-f', file];
  if (type === 'rsa') args.splice(3, 0, '-b', '2048');
  await runOk(SSH_KEYGEN_PATH, args);
  const [privateKey, publicKey] = await Promise.all([
    readFile(file, 'utf8'),
    readFile(`${file}.pub`, 'utf8'),
  ]);
  const pair: KeyPair = { privateKey, publicKey: publicKey.trim(), type, privateKeyPath: file };
  if (passphrase) pair.passphrase = passphrase;
  return pair;
}

/** 'SHA256:...' as the second column of `ssh-keygen -lf <pub>`. */
async function fingerprint(pubFile: string): Promise<string> {
  const out = await runOk(SSH_KEYGEN_PATH, ['-l', '-E', 'sha256', '-f', pubFile]);
  const fp = out.trim().split(/\s+/)[1];
  if (!fp || !fp.startsWith('SHA256:')) throw new Error(`unexpected ssh-keygen -lf output: ${out}`);
  return fp;
}

/** Same value computed from a public key line (sanity-checked against ssh-keygen in the spec). */
export function sha256Fingerprint(publicKeyLine: string): string {
  const blob = Buffer.from(publicKeyLine.trim().split(/\s+/)[1], 'base64');
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

// ---------------------------------------------------------------------------
// sshd
// ---------------------------------------------------------------------------

let opensshVersion: Promise<[number, number]> | undefined;

/** OpenSSH version of /usr/sbin/sshd (older sshd prints it in the usage text for -V). */
function sshdVersion(): Promise<[number, number]> {
  opensshVersion ??= run(SSHD_PATH, ['-V']).then((r) => {
    const m = /OpenSSH_(\d+)\.(\d+)/.exec(r.stderr + r.stdout);
    return m ? [Number(m[1]), Number(m[2])] : [0, 0];
  });
  return opensshVersion;
}

function buildConfig(
  dir: string,
  port: number,
  opts: SshdOptions,
  version: [number, number],
): string {
  const yn = (b: boolean) => (b ? 'yes' : 'no');
  const lines = [
    '# generated by test/support/sshd.ts',
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${path.join(dir, 'ssh_host_ed25519_key')}`,
    `PidFile ${path.join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
    'StrictModes no',
    'UsePAM no',
    'PermitRootLogin yes',
    'PubkeyAuthentication yes',
    `PasswordAuthentication ${yn(opts.passwordAuth ?? true)}`,
    'KbdInteractiveAuthentication no',
    `Subsystem sftp ${SFTP_SERVER_PATH}`,
    `AllowTcpForwarding ${yn(opts.allowTcpForwarding ?? true)}`,
    `MaxSessions ${opts.maxSessions ?? 10}`,
    `MaxStartups ${opts.maxStartups ?? '100:30:200'}`,
    `LogLevel ${opts.logLevel ?? 'VERBOSE'}`,
    // AcceptEnv deliberately not set: the client may not pass any environment variable.
    'PrintMotd no',
    'UseDNS no',
  ];
  // OpenSSH >= 9.8 penalises sources that fail auth or drop connections; tests do both on purpose.
  if (version[0] > 9 || (version[0] === 9 && version[1] >= 8)) lines.push('PerSourcePenalties no');
  if (opts.extraConfig) lines.push(opts.extraConfig.trimEnd());
  return lines.join('\n') + '\n';
}

/** Connects and reads until the SSH identification string arrives. */
function readBanner(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    let buf = '';
    let done = false;
    const sock = net.connect({ host: '127.0.0.1', port });
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      buf += d;
      if (buf.includes('SSH-2.0')) finish(true);
    });
    sock.on('error', () => finish(false));
    sock.on('close', () => finish(false));
  });
}

class BindError extends Error {}

async function launch(
  dir: string,
  port: number,
  opts: SshdOptions,
): Promise<{ child: ChildProcess; configPath: string; logPath: string }> {
  const configPath = path.join(dir, 'sshd_config');
  const logPath = path.join(dir, 'sshd.log');
  await writeFile(configPath, buildConfig(dir, port, opts, await sshdVersion()), { mode: 0o644 });
  await writeFile(logPath, '');

  const child = spawn(SSHD_PATH, ['-D', '-f', configPath, '-E', logPath], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let spawnError: Error | undefined;
  child.on('exit', (code, signal) => (exited = { code, signal }));
  child.on('error', (err) => (spawnError = err));

  const readLog = () => {
    try {
      return readFileSync(logPath, 'utf8');
    } catch {
      return '';
    }
  };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (spawnError) throw new Error(`failed to spawn ${SSHD_PATH}: ${spawnError.message}`);
    if (exited) {
      const log = readLog();
      const msg =
        `sshd exited before becoming ready (code ${exited.code}, signal ${exited.signal}) on port ${port}\n` +
        `--- sshd log ---\n${log}\n--- stderr ---\n${stderr}`;
      if (
        /Bind to port .* failed|Cannot bind any address|Address already in use/i.test(log + stderr)
      ) {
        throw new BindError(msg);
      }
      throw new Error(msg);
    }
    if (await readBanner(port, 1_000)) return { child, configPath, logPath };
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(
        `sshd did not answer with an SSH-2.0 banner on 127.0.0.1:${port} within ${READY_TIMEOUT_MS} ms\n` +
          `--- sshd log ---\n${readLog()}\n--- stderr ---\n${stderr}`,
      );
    }
    await sleep(25);
  }
}

/**
 * Starts `/usr/sbin/sshd -D` on 127.0.0.1 with a fresh temp dir, host key and client key.
 * Resolves once the port answers with an SSH-2.0 banner.
 */
export async function startSshd(opts: SshdOptions = {}): Promise<SshdInstance> {
  const reg = registry();
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });

  const dir = await mkdtemp(path.join(os.tmpdir(), 'cronium-sshd-'));
  // 0711 so that sshd, reading authorized_keys as a non-root user (cronium-test), can traverse.
  await chmod(dir, 0o711);
  try {
    const hostKeyFile = path.join(dir, 'ssh_host_ed25519_key');
    const authorizedKeys = path.join(dir, 'authorized_keys');
    const [hostKey, clientKey] = await Promise.all([
      generateKey(hostKeyFile, 'ed25519', 'cronium-test-host'),
      generateKey(path.join(dir, 'client_ed25519'), 'ed25519', 'cronium-test-client'),
    ]);
    await writeFile(authorizedKeys, clientKey.publicKey + '\n', { mode: 0o644 });
    await chmod(authorizedKeys, 0o644);
    const hostKeyFingerprint = await fingerprint(`${hostKeyFile}.pub`);
    const hostPublicKey = hostKey.publicKey.split(/\s+/).slice(0, 2).join(' ');

    let launched: Awaited<ReturnType<typeof launch>> | undefined;
    let port = 0;
    for (let attempt = 1; !launched; attempt++) {
      port = await freePort();
      try {
        launched = await launch(dir, port, opts);
      } catch (err) {
        if (err instanceof BindError && attempt < BIND_ATTEMPTS) continue;
        throw err;
      }
    }
    const { configPath, logPath } = launched;
    let child = launched.child;
    let pid = child.pid as number;

    // Watchdog: if this test process dies without running its exit handler (SIGKILL),
    // kill the listener and remove the temp dir. `tail --pid` polls once a second.
    const startWatchdog = () => {
      const w = spawn(
        '/bin/sh',
        [
          '-c',
          'tail --pid="$1" -f /dev/null; kill -9 "$2" 2>/dev/null; rm -rf "$3"',
          'sshd-watchdog',
          String(process.pid),
          String(pid),
          dir,
        ],
        { stdio: 'ignore', detached: true },
      );
      w.unref();
      return w;
    };
    const watchdog = startWatchdog();

    let keyCounter = 0;
    const leftovers: ProcInfo[] = [];
    /** What freeze() stopped (the listener and its sessions). */
    let frozen: ProcInfo[] = [];
    const sshdsOf = async () => {
      const tree = await descendants(pid);
      leftovers.push(...tree.filter((p) => p.comm !== 'sshd'));
      const self = await readProc(pid);
      return [...(self ? [self] : []), ...tree.filter((p) => p.comm === 'sshd')];
    };
    let stopping: Promise<void> | undefined;

    const running: RunningSshd = {
      child,
      watchdog,
      dir,
      stop: () => (stopping ??= doStop()),
    };

    async function doStop(): Promise<void> {
      reg.running.delete(running);
      const tree = [...(await descendants(pid)), ...frozen];
      for (const p of frozen) {
        try {
          process.kill(p.pid, 'SIGCONT');
        } catch {
          /* gone */
        }
      }
      const exited = new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) resolve();
        else child.once('exit', () => resolve());
      });
      child.kill('SIGTERM');
      const forced = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await exited;
      clearTimeout(forced);
      // Per-connection sshd processes (and their commands) outlive a SIGTERMed listener.
      const stillAlive: ProcInfo[] = [];
      for (const p of [...tree, ...leftovers]) if (await isSameProcAlive(p)) stillAlive.push(p);
      await termThenKill(stillAlive).catch(() => undefined);
      // Detached runners (supervisor, ticker, linger) of this instance's base dirs.
      await killAndWait(await processesUnder(dir)).catch(() => undefined);
      killGroup(running.watchdog);
      await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    }

    const instance: SshdInstance = {
      host: '127.0.0.1',
      port,
      username: os.userInfo().username,
      key: clientKey,
      hostPublicKey,
      hostKeyFingerprint,
      pid,
      dir,
      configPath,

      async addClientKey(type, passphrase) {
        keyCounter += 1;
        const file = path.join(dir, `client_${type}_${keyCounter}`);
        const pair = await generateKey(
          file,
          type,
          `cronium-test-client-${keyCounter}`,
          passphrase ?? '',
        );
        await appendFile(authorizedKeys, pair.publicKey + '\n');
        return pair;
      },

      /**
       * SIGKILLs the per-connection sshd processes (every sshd descendant of the listener),
       * which drops all TCP connections; the listener keeps accepting. Commands those
       * sessions ran are left running (as after a real network drop) and are killed by stop().
       */
      async killConnections() {
        const tree = await descendants(pid);
        const sshds = tree.filter((p) => p.comm === 'sshd');
        leftovers.push(...tree.filter((p) => p.comm !== 'sshd'));
        await killAndWait(sshds);
      },

      async freeze() {
        frozen = await sshdsOf();
        for (const p of frozen) process.kill(p.pid, 'SIGSTOP');
      },

      async thaw() {
        for (const p of frozen) {
          try {
            process.kill(p.pid, 'SIGCONT');
          } catch {
            /* gone */
          }
        }
        frozen = [];
      },

      async crash() {
        await killAndWait(await sshdsOf());
      },

      async restart() {
        let again: Awaited<ReturnType<typeof launch>> | undefined;
        // The old listener's port may take a moment to be free again.
        for (let attempt = 1; !again; attempt++) {
          try {
            again = await launch(dir, port, opts);
          } catch (err) {
            if (!(err instanceof BindError) || attempt >= BIND_ATTEMPTS) throw err;
            await sleep(200);
          }
        }
        child = again.child;
        pid = child.pid as number;
        instance.pid = pid;
        running.child = child;
        killGroup(running.watchdog);
        running.watchdog = startWatchdog();
        reg.running.add(running);
        child.once('exit', () => {
          if (!stopping) reg.running.delete(running);
        });
      },

      stop: () => running.stop(),

      logs() {
        try {
          return readFileSync(logPath, 'utf8');
        } catch {
          return '';
        }
      },
    };
    reg.running.add(running);
    // If sshd dies on its own, drop it from the registry (stop() stays safe to call).
    child.once('exit', () => {
      if (!stopping) reg.running.delete(running);
    });
    return instance;
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

// ---------------------------------------------------------------------------
// Local unix user for password-auth tests
// ---------------------------------------------------------------------------

/**
 * Idempotently creates the local user 'cronium-test' (home dir, /bin/bash) and sets its
 * password with chpasswd. Needs root. Safe to call concurrently from several workers.
 */
export async function ensureTestUser(): Promise<{ username: string; password: string }> {
  const exists = async () => (await run('/usr/bin/id', ['-u', TEST_USER])).code === 0;
  if (!(await exists())) {
    const r = await run('/usr/sbin/useradd', ['-m', '-s', '/bin/bash', TEST_USER]);
    if (r.code !== 0 && !(await exists())) {
      throw new Error(`useradd ${TEST_USER} failed (${r.code}): ${r.stderr.trim()}`);
    }
  }
  // chpasswd / usermod lock /etc/shadow; another worker may hold the lock briefly.
  const retry = async (file: string, args: string[], input?: string) => {
    let last: ExecResult | undefined;
    for (let i = 0; i < 20; i++) {
      last = await run(file, args, { input });
      if (last.code === 0) return;
      await sleep(100 + Math.random() * 200);
    }
    throw new Error(`${file} ${args.join(' ')} failed (${last?.code}): ${last?.stderr.trim()}`);
  };
  await retry('/usr/sbin/chpasswd', [], `${TEST_USER}:${TEST_USER_PASSWORD}\n`);
  // Make sure the account is neither locked nor expired (useradd may default to either).
  await retry('/usr/sbin/usermod', ['--unlock', TEST_USER]);
  await retry('/usr/bin/chage', ['-I', '-1', '-M', '-1', '-E', '-1', TEST_USER]);
  return { username: TEST_USER, password: TEST_USER_PASSWORD };
}

/** The user jobs with `become` run as without a password (ensureBecomeUsers). */
export const BECOME_USER = 'cronium-become';
const SUDOERS_FILE = '/etc/sudoers.d/cronium-test';

/**
 * For `become`: the test user (ensureTestUser), a second local user BECOME_USER, and a
 * sudoers entry letting the test user run anything as BECOME_USER without a password and
 * as root with its own password (TEST_USER_PASSWORD). Idempotent: the entry is checked
 * with `visudo -cf` and renamed into /etc/sudoers.d (mode 0440) in one step.
 */
export async function ensureBecomeUsers(): Promise<{ username: string; password: string }> {
  const user = await ensureTestUser();
  if ((await run('/usr/bin/id', ['-u', BECOME_USER])).code !== 0) {
    const r = await run('/usr/sbin/useradd', ['-m', '-s', '/bin/bash', BECOME_USER]);
    if (r.code !== 0 && (await run('/usr/bin/id', ['-u', BECOME_USER])).code !== 0) {
      throw new Error(`useradd ${BECOME_USER} failed (${r.code}): ${r.stderr.trim()}`);
    }
  }
  const rules =
    '# cronium tests (test/support/sshd.ts, ensureBecomeUsers)\n' +
    `${TEST_USER} ALL=(${BECOME_USER}) NOPASSWD: ALL\n` +
    `${TEST_USER} ALL=(root) ALL\n`;
  const current = await readFile(SUDOERS_FILE, 'utf8').catch(() => null);
  if (current !== rules) {
    // a name with a dot is ignored by sudo's @includedir until the rename
    const tmp = `${SUDOERS_FILE}.${process.pid}.tmp`;
    await writeFile(tmp, rules, { mode: 0o440 });
    await chmod(tmp, 0o440);
    const check = await run('/usr/sbin/visudo', ['-cf', tmp]);
    if (check.code !== 0) {
      await rm(tmp, { force: true });
      throw new Error(`visudo -cf refused the test sudoers entry: ${check.stderr.trim()}`);
    }
    await rename(tmp, SUDOERS_FILE);
  }
  return user;
}

/** The pool's endpoint for a harness sshd: its user, client key and pinned host key. */
export function endpointOf(sshd: SshdInstance, over: Partial<SshEndpoint> = {}): SshEndpoint {
  return {
    serverId: 'srv',
    serverName: 'srv',
    host: sshd.host,
    port: sshd.port,
    username: sshd.username,
    privateKey: sshd.key.privateKey,
    hostKeyFingerprint: sshd.hostKeyFingerprint,
    hostKeyType: null,
    ...over,
  };
}
