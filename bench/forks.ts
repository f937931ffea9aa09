/**
 * npm run bench forks: how many processes the runner forks and execs for one warm job,
 * counted with strace from the moment the payload is written to a standby runner until the
 * trailer arrives (docs/runner-protocol.md, "Cost").
 *
 * Against a real sshd (test/support/sshd.ts) as an unprivileged user with a plain login
 * shell (cronium-test): the runner is deployed with the service's own deploy command, then
 * each job opens a `run` channel whose runner is started under `strace -f -ttt -e
 * trace=process` (the service's command line, with `exec sh` prefixed by strace), waits
 * until it is a standby (its ready word, or BENCH_STANDBY_MS when the runner has none),
 * writes the payload and reads to the trailer. Forks are clone/clone3/fork/vfork calls
 * that made a process (threads are not counted), execs the execve calls that succeeded,
 * both with a timestamp between the payload write and the trailer.
 *
 * Env: BENCH_N rounds per case (default 5; the table shows the median and the minimum);
 * BENCH_REMOTE_DIR another runner to deploy (e.g. an older one: `git archive <commit>
 * src/runner-cache/remote | tar -x -C /tmp/old`, then /tmp/old/src/runner-cache/remote);
 * BENCH_STRACE=0 no strace: only the payload → trailer time, unslowed by tracing.
 */
import { Client, ClientChannel } from 'ssh2';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildRunnerArtifact } from '../src/runner-cache/runner-artifact';
import { REPO_ROOT } from '../test/support/service-process';
import { deployCommand, runCommand } from '../src/runner/commands';
import { buildRunPayload, RunPayloadInput } from '../src/runner/protocol';
import { bundledFiles } from '../src/runtime-helpers/bundled-files';
import { ensureTestUser, startSshd } from '../test/support/sshd';
import { envCount, idsOf, median, onCleanup, runBench, sleep } from './support';

const N = envCount('BENCH_N', 5);
const STANDBY_MS = envCount('BENCH_STANDBY_MS', 800);
const STRACE = '/usr/bin/strace';
const TRACE = process.env.BENCH_STRACE !== '0';

interface Case {
  name: string;
  type: 'bash' | 'python';
  script: string;
  bundled: boolean;
}

const CASES: Case[] = [
  { name: 'bash api', type: 'bash', script: 'echo ok', bundled: false },
  { name: 'bash bundled', type: 'bash', script: 'echo ok', bundled: true },
  { name: 'python api', type: 'python', script: 'print("ok")', bundled: false },
  { name: 'python bundled', type: 'python', script: 'print("ok")', bundled: true },
];

function connect(host: string, port: number, username: string, password: string) {
  return new Promise<Client>((resolve, reject) => {
    const c = new Client();
    c.once('ready', () => resolve(c));
    c.once('error', reject);
    c.connect({ host, port, username, password, readyTimeout: 20_000 });
  });
}

function exec(c: Client, cmd: string): Promise<ClientChannel> {
  return new Promise((resolve, reject) =>
    c.exec(cmd, (err, ch) => (err ? reject(err) : resolve(ch))),
  );
}

/** Runs `cmd` with `input` on stdin; resolves with stdout once the channel closes. */
async function execAll(c: Client, cmd: string, input?: Buffer): Promise<string> {
  const ch = await exec(c, cmd);
  let out = '';
  ch.on('data', (d: Buffer) => (out += d.toString()));
  ch.stderr.on('data', () => undefined);
  if (input) ch.end(input);
  else ch.end();
  await new Promise((r) => ch.once('close', r));
  return out;
}

interface Count {
  forks: number;
  execs: number;
  programs: string[];
  ms: number;
}

/** The fork and exec calls of an `strace -f -ttt` log between t0 and t1 (epoch seconds). */
export function countProcessCalls(log: string, t0: number, t1: number): Omit<Count, 'ms'> {
  const forks: string[] = [];
  const execs: string[] = [];
  // pid -> the exec call in flight (its result may come on a "resumed" line)
  const pendingExec = new Map<string, string>();
  for (const line of log.split('\n')) {
    const m = /^(\d+)\s+(\d+\.\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const [, pid, ts, rest] = m;
    const t = Number(ts);
    const inWindow = t >= t0 && t <= t1;
    const call = /^(clone3?|fork|vfork|execve)\((.*)$/.exec(rest);
    if (call) {
      const [, name, args] = call;
      if (name === 'execve') {
        const prog = /^"([^"]*)"/.exec(args)?.[1] ?? '?';
        if (/<unfinished \.\.\.>$/.test(args)) {
          if (inWindow) pendingExec.set(pid, prog);
        } else if (inWindow && /\) = 0$/.test(args)) execs.push(prog);
      } else if (inWindow && !/CLONE_THREAD/.test(args)) {
        forks.push(name);
      }
      continue;
    }
    const resumed = /^<\.\.\. execve resumed>.*= (-?\d+)/.exec(rest);
    if (resumed && pendingExec.has(pid)) {
      if (resumed[1] === '0') execs.push(pendingExec.get(pid)!);
      pendingExec.delete(pid);
    }
  }
  return { forks: forks.length, execs: execs.length, programs: execs.map((p) => path.basename(p)) };
}

async function oneJob(
  c: Client,
  cmd: string,
  logFile: string,
  payload: Buffer,
): Promise<Count & { standbyWord: boolean }> {
  const ch = await exec(c, cmd);
  let out = Buffer.alloc(0);
  let standbyWord = false;
  let onData: (() => void) | null = null;
  ch.on('data', (d: Buffer) => {
    out = Buffer.concat([out, d]);
    onData?.();
  });
  ch.stderr.on('data', () => undefined);
  const closed = new Promise((r) => ch.once('close', r));
  // a standby: its ready word, or (a runner without one) a fixed pause
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, STANDBY_MS);
    onData = () => {
      if (/^CRONIUM2 standby /m.test(out.toString('latin1'))) {
        standbyWord = true;
        clearTimeout(t);
        resolve();
      }
    };
    onData();
  });
  await sleep(50); // strace has written the standby's last calls
  const t0 = Date.now() / 1000;
  let t1 = 0;
  const trailer = new Promise<void>((resolve, reject) => {
    void closed.then(() => {
      if (!t1) reject(new Error(`no trailer: ${out.toString('latin1').slice(0, 300)}`));
    });
    onData = () => {
      if (!t1 && /\nCRONIUM2 exit \d+ \S+.*\n$/.test(out.toString('latin1'))) {
        t1 = Date.now() / 1000;
        resolve();
      }
    };
  });
  ch.write(payload);
  await trailer;
  ch.end('ack\n');
  await closed; // strace exits once every traced process has (the linger within a second)
  const text = out.toString('latin1');
  if (!/\nok\n/.test(text)) throw new Error(`unexpected output: ${text.slice(0, 300)}`);
  const ms = (t1 - t0) * 1000;
  if (!TRACE) return { forks: NaN, execs: NaN, programs: [], ms, standbyWord };
  const log = fs.readFileSync(logFile, 'utf8');
  return { ...countProcessCalls(log, t0, t1), ms, standbyWord };
}

async function main(): Promise<void> {
  if (TRACE && !fs.existsSync(STRACE)) throw new Error(`${STRACE} is needed`);
  const sshd = await startSshd();
  onCleanup('sshd', () => sshd.stop());
  const { username, password } = await ensureTestUser();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-forks-'));
  onCleanup('tmp', () => fs.rmSync(tmp, { recursive: true, force: true }));
  const { uid, gid } = idsOf(username);
  fs.chownSync(tmp, uid, gid);
  fs.chmodSync(tmp, 0o700);
  const base = path.join(tmp, 'base');
  const c = await connect(sshd.host, sshd.port, username, password);
  onCleanup('ssh', () => void c.end());
  // from the sources (REMOTE_DIR is relative to the compiled file)
  const art = buildRunnerArtifact(
    process.env.BENCH_REMOTE_DIR || path.join(REPO_ROOT, 'src/runner-cache/remote'),
  );
  const deployed = await execAll(c, deployCommand(base, art.hash), art.tar);
  if (!deployed.includes('CRONIUM2 deployed')) throw new Error(`deploy: ${deployed}`);
  const logFile = path.join(tmp, 'strace.log');
  const cmd = TRACE
    ? runCommand(base, art.hash).replace(
        /exec sh /,
        `exec ${STRACE} -f -qq -ttt -e trace=process -o ${logFile} sh `,
      )
    : runCommand(base, art.hash);
  console.log(`runner ${art.version} ${art.hash.slice(0, 12)}, user ${username}, N=${N}`);
  const rows: string[] = [];
  let n = 0;
  for (const k of CASES) {
    const counts: (Count & { standbyWord: boolean })[] = [];
    for (let i = 0; i < N; i++) {
      const req: RunPayloadInput = {
        runId: `forks-${process.pid}-${n++}`,
        scriptType: k.type,
        graceSeconds: 5,
        timeoutSeconds: 60,
        leaseSeconds: 30,
        script: k.script,
        env: {
          CRONIUM_HELPER_MODE: k.bundled ? 'bundled' : 'api',
          ...(k.bundled
            ? {}
            : { CRONIUM_API_ENDPOINT: 'http://127.0.0.1:9', CRONIUM_API_TOKEN: 'x' }),
          CRONIUM_EXECUTION_ID: 'e',
          CRONIUM_JOB_ID: 'j',
          CRONIUM_SERVER_ID: 's',
        },
        files: k.bundled ? bundledFiles({ executionId: 'e' }, { a: 1 }, { k: 'v' }) : {},
        keep: k.bundled,
      };
      let payload = buildRunPayload(req);
      // runners before 2.1 read no `text` sections: the same bytes as plain sections
      if (/^2\.0\./.test(art.version)) payload = withoutText(payload);
      counts.push(await oneJob(c, cmd, logFile, payload));
    }
    const f = counts.map((x) => x.forks);
    const e = counts.map((x) => x.execs);
    const last = counts[counts.length - 1];
    rows.push(
      [
        k.name.padEnd(15),
        `forks ${median(f)} (min ${Math.min(...f)})`.padEnd(18),
        `execs ${median(e)} (min ${Math.min(...e)})`.padEnd(18),
        `${Math.round(median(counts.map((x) => x.ms))! * 10) / 10} ms`.padEnd(9),
        `(min ${Math.round(Math.min(...counts.map((x) => x.ms)) * 10) / 10})`.padEnd(11),
        `standby word ${last.standbyWord ? 'yes' : 'no'}`.padEnd(17),
        `execs: ${last.programs.join(' ')}`,
      ].join(' '),
    );
  }
  console.log(rows.join('\n'));
}

/** A payload with its `text` sections sent as plain ones (for a runner before 2.1). */
function withoutText(p: Buffer): Buffer {
  const parts: Buffer[] = [];
  let pos = p.indexOf(0x0a) + 1;
  parts.push(p.subarray(0, pos));
  while (pos < p.length) {
    const nl = p.indexOf(0x0a, pos);
    const [name, len, text] = p.subarray(pos, nl).toString('latin1').split(' ');
    const n = Number(len);
    parts.push(Buffer.from(`${name} ${n}\n`), p.subarray(nl + 1, nl + 1 + n));
    pos = nl + 1 + n;
    // a text section's last line always ends in a newline on the wire, counted or not
    if (text === 'text' && n > 0 && p[nl + n] !== 0x0a) pos++;
  }
  return Buffer.concat(parts);
}

runBench(main);
