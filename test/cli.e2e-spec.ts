/**
 * The `cronium` CLI (src/cli, built to dist/cli/main.js) end to end: the built service as a
 * process, three real sshd servers, the CLI as a child process (pipes: no TTY) and, for the
 * progress view and Ctrl-C, in a real terminal under tmux (private socket, own session).
 */
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO_ROOT, ServiceProcess, startServiceProcess } from './support/service-process';
import { SshdInstance, startSshd } from './support/sshd';

const CLI = path.join(REPO_ROOT, 'dist/cli/main.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('cronium CLI (real service process, 3 sshd)', () => {
  let svc: ServiceProcess;
  const sshds: SshdInstance[] = [];
  const names: string[] = [];
  let home: string;
  let env: Record<string, string>;

  /** The CLI with stdin `input`, no TTY; resolves with its exit code and output. */
  const cli = (args: string[], opts: { env?: Record<string, string>; input?: string } = {}) =>
    new Promise<CliResult>((resolve, reject) => {
      const child = execFile(
        process.execPath,
        [CLI, ...args],
        { env: { ...env, ...opts.env }, timeout: 60_000, maxBuffer: 16 << 20 },
        (err, stdout, stderr) => {
          if (err && typeof err.code !== 'number') return reject(err);
          resolve({ code: child.exitCode, stdout, stderr });
        },
      );
      child.stdin!.end(opts.input ?? '');
    });

  /** `[name] text` lines of a server, in order. */
  const linesOf = (out: string, name: string) =>
    out
      .split('\n')
      .filter((l) => l.startsWith(`[${name}] `))
      .map((l) => l.slice(name.length + 3));

  /** A script that exits `code` on the sshd of `port` only (SSH_CONNECTION ends with it). */
  const failOn = (port: number, code: number) =>
    `echo "start"; [ "\${SSH_CONNECTION##* }" = ${port} ] && { echo "bad" >&2; exit ${code}; }; echo "done"`;

  beforeAll(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-cli-home-'));
    for (let i = 0; i < 3; i++) sshds.push(await startSshd());
    svc = await startServiceProcess({ env: { NODE_ENV: 'test' }, stdio: 'ignore' });
    await svc.waitReady(120_000); // a loaded machine starts it slowly
    env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: home,
      XDG_CONFIG_HOME: path.join(home, '.config'),
      CRONIUM_URL: svc.base,
      CRONIUM_TOKEN: svc.token,
    };
    for (const [i, s] of sshds.entries()) {
      const name = `web-${i + 1}-${s.port}`;
      names.push(name);
      const r = await cli([
        'servers',
        'add',
        name,
        '--host',
        s.host,
        '--port',
        String(s.port),
        '--user',
        s.username,
        '--key-file',
        s.key.privateKeyPath!,
        '--host-key',
        s.hostPublicKey,
        '--tags',
        'web,cli',
        '--base-dir',
        `${s.dir}/base`,
      ]);
      expect(r).toMatchObject({ code: 0, stdout: expect.stringContaining(`added ${name}`) });
    }
    // The first job deploys the runner to each server (seconds on a loaded machine); the
    // tests below then see the warm path, whichever of them runs alone.
    const warm = await svc.api('POST', '/v1/jobs', {
      script: { type: 'bash', content: 'true' },
      targets: { tags: ['web'] },
    });
    await svc.waitForExecution(warm.body.id, { pollMs: 100 });
  }, 300_000); // the first deploy to 3 servers is slow on a loaded machine

  afterAll(async () => {
    await svc?.stop();
    await Promise.all(sshds.map((s) => s.stop()));
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('servers ls and check show the inventory; check of an unknown name exits 4', async () => {
    const ls = await cli(['servers', 'ls', '--json']);
    expect(ls.code).toBe(0);
    const listed = JSON.parse(ls.stdout);
    expect(listed.map((s: any) => s.name).sort()).toEqual([...names].sort());
    expect(listed.every((s: any) => !('privateKey' in s))).toBe(true);

    const table = await cli(['servers', 'ls']);
    for (const [i, n] of names.entries())
      expect(table.stdout).toMatch(
        new RegExp(`^[0-9a-f-]{36} +${n} +127\\.0\\.0\\.1:${sshds[i].port} `, 'm'),
      );

    const check = await cli(['servers', 'check', names[0]]);
    expect(check.code).toBe(0);
    expect(
      check.stdout.startsWith(`ok: ssh-ed25519 ${sshds[0].hostKeyFingerprint}, connect `),
    ).toBe(true);

    const unknown = await cli(['servers', 'check', 'no-such-server']);
    expect(unknown.code).toBe(4);
    expect(unknown.stderr).toContain('no server named no-such-server');
  });

  it('run on 3 servers: every line once, [server-name] prefixed and in order, a table, exit 0, no colours off a TTY', async () => {
    const script = 'for i in $(seq 1 150); do echo "line $i"; done; echo "to stderr" >&2';
    const r = await cli(['run', '--tags', 'web', '--', script]);
    expect(r.code).toBe(0);
    const want = Array.from({ length: 150 }, (_, i) => `line ${i + 1}`);
    for (const n of names) {
      expect(linesOf(r.stdout, n)).toEqual(want);
      expect(linesOf(r.stderr, n)).toEqual(['to stderr']);
      expect(r.stdout).toMatch(new RegExp(`^${n} +succeeded +0 +\\d`, 'm'));
    }
    expect(r.stdout).toMatch(/^SERVER +STATUS +EXIT +DURATION/m);
    expect(r.stdout).toMatch(/execution [0-9a-f-]{36} succeeded: 3\/3 succeeded/);
    expect(r.stdout + r.stderr).not.toContain('\x1b[');
    expect(r.stderr).not.toContain('done,'); // no progress line without a TTY
  });

  it('a failing target: exit 1, its status and exit code in the table; status, logs and rerun agree', async () => {
    const bad = sshds[1];
    const r = await cli(['run', '--server', ...names, '--', failOn(bad.port, 7)]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^${names[1]} +failed +7 `, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^${names[0]} +succeeded +0 `, 'm'));
    expect(linesOf(r.stderr, names[1])).toEqual(['bad']);
    const id = /execution ([0-9a-f-]{36}) partial: 2\/3 succeeded/.exec(r.stdout)?.[1];
    expect(id).toBeDefined();

    const status = await cli(['status', id!]);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`execution ${id}: partial, 2/3 succeeded`);
    expect((await cli(['status', id!, '--wait'])).code).toBe(1);

    const logs = await cli(['logs', id!]);
    expect(logs.code).toBe(0);
    expect(linesOf(logs.stdout, names[0])).toEqual(['start', 'done']);
    expect(linesOf(logs.stdout, names[1])).toEqual(['start']);
    expect(linesOf(logs.stderr, names[1])).toEqual(['bad']); // no system lines without -v
    const verbose = await cli(['logs', id!, '-v']);
    expect(linesOf(verbose.stderr, names[1])).toContainEqual(expect.stringMatching(/^runner /));
    const one = JSON.parse((await cli(['logs', id!, '--server', names[1], '--json'])).stdout);
    // stdout and stderr are two pipes on the server: no order between them
    const own = one.filter((l: any) => l.stream !== 'system');
    expect(own.sort((x: any, y: any) => x.stream.localeCompare(y.stream))).toEqual([
      { serverId: expect.any(String), serverName: names[1], stream: 'stderr', text: 'bad' },
      { serverId: expect.any(String), serverName: names[1], stream: 'stdout', text: 'start' },
    ]);

    // rerun: only the failed target runs again (and fails again)
    const again = await cli(['rerun', id!]);
    expect(again.code).toBe(1);
    expect(linesOf(again.stdout, names[1])).toEqual(['start']);
    expect(linesOf(again.stdout, names[0])).toEqual([]);
    expect(again.stdout).toMatch(/: 0\/1 succeeded/);

    const ls = JSON.parse((await cli(['ls', '--status', 'partial', '--json'])).stdout);
    expect(ls.items.map((e: any) => e.id)).toContain(id);
  });

  it('--json: one document with the execution, its targets and its log lines', async () => {
    const r = await cli(['run', '--tags', 'web', '--json', '--name', 'json-run', '--', 'echo hi']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({
      name: 'json-run',
      status: 'succeeded',
      summary: { total: 3, succeeded: 3 },
    });
    expect(doc.targets.map((t: any) => [t.serverName, t.status, t.exitCode]).sort()).toEqual(
      names.map((n) => [n, 'succeeded', 0]),
    );
    const printed = doc.logs.filter((l: any) => l.stream !== 'system');
    expect(printed.map((l: any) => `${l.serverName}:${l.stream}:${l.text}`).sort()).toEqual(
      names.map((n) => `${n}:stdout:hi`),
    );
    // the service's own lines (runner deployed, helper mode) are in --json, marked system
    expect(doc.logs.some((l: any) => l.stream === 'system' && /runner/.test(l.text))).toBe(true);
  });

  it('--file picks the type from the extension', async () => {
    const file = path.join(home, 'hello.py');
    fs.writeFileSync(file, 'import sys\nprint("py", sys.version_info[0])\n');
    const r = await cli(['run', '--server', names[0], '--file', file]);
    expect(r.code).toBe(0);
    expect(linesOf(r.stdout, names[0])).toEqual(['py 3']);
  });

  it('bad usage exits 2, API and connection errors 3, unknown ids 4; the token never shows', async () => {
    const usage = [
      ['run', '--', 'true'], // no targets
      ['run', '--tags', 'web'], // no command
      ['run', '--tags', 'web', '--timeout', 'x', '--', 'true'],
      ['run', '--tags', 'web', '--file', '/nonexistent.sh'],
      ['nonsense'],
      ['run', '--tags', 'bad tag!', '--', 'true'], // the API's 400
    ];
    for (const args of usage) {
      const r = await cli(args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).not.toBe('');
    }
    const badToken = await cli(['ls'], { env: { CRONIUM_TOKEN: 'wrong-token-123456' } });
    expect(badToken.code).toBe(3);
    expect(badToken.stderr).toContain('401');
    const down = await cli(['ls'], { env: { CRONIUM_URL: 'http://127.0.0.1:1' } });
    expect(down.code).toBe(3);
    expect(down.stderr).toContain('cannot reach http://127.0.0.1:1');
    const unknown = '00000000-0000-4000-8000-000000000000';
    for (const cmd of ['status', 'logs', 'cancel'])
      expect((await cli([cmd, unknown])).code).toBe(4);
    for (const r of [badToken, down]) expect(r.stdout + r.stderr).not.toContain(svc.token);
  });

  it('config file: used when the env is unset, refused when others can read it', async () => {
    const noEnv = { CRONIUM_URL: '', CRONIUM_TOKEN: '' };
    const missing = await cli(['ls'], { env: noEnv });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('no service token');
    expect((await cli(['config', 'set', 'url', svc.base], { env: noEnv })).code).toBe(0);
    expect(
      (await cli(['config', 'set', 'token', '-'], { env: noEnv, input: svc.token + '\n' })).code,
    ).toBe(0);
    const file = path.join(home, '.config/cronium/config.json');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect((await cli(['ls'], { env: noEnv })).code).toBe(0);
    fs.chmodSync(file, 0o644);
    const open = await cli(['ls'], { env: noEnv });
    expect(open.code).toBe(2);
    expect(open.stderr).toContain(`chmod 600 ${file}`);
    fs.rmSync(file);
  });

  it('cancel: a detached run is cancelled by id; a second cancel exits 4', async () => {
    const started = await cli(['run', '--server', names[0], '--detach', '--', 'sleep 30']);
    expect(started.code).toBe(0);
    const id = started.stdout.trim();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect((await cli(['cancel', id])).code).toBe(0);
    const ended = await cli(['status', id, '--wait', '--json']);
    expect(ended.code).toBe(1);
    expect(JSON.parse(ended.stdout).status).toBe('cancelled');
    expect((await cli(['cancel', id])).code).toBe(4);
  });

  it('logs -f follows a running execution to its end', async () => {
    const started = await cli([
      'run',
      '--server',
      names[2],
      '--detach',
      '--',
      'echo one; sleep 1; echo two',
    ]);
    const id = started.stdout.trim();
    const r = await cli(['logs', id, '-f']);
    expect(r.code).toBe(0);
    expect(linesOf(r.stdout, names[2])).toEqual(['one', 'two']);
  });

  it('without the websocket (a proxy that refuses upgrades) every line still comes, once', async () => {
    // Plain HTTP passes through; websocket upgrades are answered 404, so the CLI long-polls
    // and prints the log from GET /v1/executions/:id/logs.
    const proxy = http.createServer((req, res) => {
      const up = http.request(
        {
          host: '127.0.0.1',
          port: svc.port,
          path: req.url,
          method: req.method,
          headers: req.headers,
        },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      req.pipe(up);
    });
    proxy.on('upgrade', (_req, socket) => socket.end('HTTP/1.1 404 Not Found\r\n\r\n'));
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const port = (proxy.address() as any).port;
      const r = await cli(
        ['run', '--tags', 'web', '--', 'for i in $(seq 1 20); do echo "n $i"; done'],
        {
          env: { CRONIUM_URL: `http://127.0.0.1:${port}` },
        },
      );
      expect(r.code).toBe(0);
      for (const n of names)
        expect(linesOf(r.stdout, n)).toEqual(Array.from({ length: 20 }, (_, i) => `n ${i + 1}`));
    } finally {
      proxy.close();
    }
  });

  describe('in a real terminal (tmux)', () => {
    // A server socket of its own per run: a new session right after a kill-server could
    // reach the old server while it exits, and die with it (seen in CI)
    let runs = 0;
    let socket = '';
    const session = 'cli';
    const tmux = (...args: string[]) =>
      execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' });
    const screen = (escapes = false) =>
      tmux('capture-pane', '-p', ...(escapes ? ['-e'] : []), '-t', session);
    const until = async (what: string, pred: (s: string) => boolean, ms = 60_000) => {
      for (const end = Date.now() + ms; ; ) {
        const s = screen();
        if (pred(s)) return s;
        if (Date.now() > end) throw new Error(`tmux screen never showed ${what}:\n${s}`);
        await sleep(100);
      }
    };
    /** Runs the CLI in a fresh tmux session; `EXIT=<code>` appears on the screen at its end. */
    const startInTmux = (args: string[], extraEnv: Record<string, string> = {}) => {
      const e = { ...env, ...extraEnv, TERM: 'xterm-256color' };
      const exports = Object.entries(e)
        .map(([k, v]) => `${k}=${shq(v)}`)
        .join(' ');
      socket = `cronium-cli-test-${process.pid}-${++runs}`;
      const cmd = `env ${exports} ${shq(process.execPath)} ${shq(CLI)} ${args.map(shq).join(' ')}; echo EXIT=$?; sleep 600`;
      tmux('new-session', '-d', '-s', session, '-x', '200', '-y', '50', cmd);
    };
    const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

    afterEach(() => {
      try {
        tmux('kill-server');
      } catch {
        /* not running */
      }
    });

    it('a progress line while it runs, colours per server, then the table; exit 0', async () => {
      startInTmux(['run', '--tags', 'web', '--', 'echo start; sleep 3; echo end']);
      const during = await until(
        'the progress line and every start',
        (x) =>
          /\] \d\/3 done, 0 failed, \d running  \d/.test(x) &&
          names.every((n) => x.includes(`[${n}] start`)),
      );
      expect(during).toMatch(/^\[[#-]{20}\] \d\/3 done, 0 failed, \d running  [\d.]+m?s/m);
      const coloured = screen(true);
      expect(coloured).toMatch(/\x1b\[\d+m\[web-1-/); // the prefix is painted
      const after = await until('the exit', (s) => s.includes('EXIT='));
      expect(after).toContain('EXIT=0');
      expect(after).not.toMatch(/done, \d failed/); // the progress line is gone at the end
      for (const n of names) {
        expect(after).toContain(`[${n}] end`);
        expect(after).toMatch(new RegExp(`^${n} +succeeded +0 `, 'm'));
      }
    });

    it('NO_COLOR: no colour escapes, still the progress line', async () => {
      startInTmux(['run', '--tags', 'web', '--', 'echo a; sleep 1.5'], { NO_COLOR: '1' });
      await until('the progress line', (s) => /\d\/3 done/.test(s) && s.includes('] a'));
      expect(screen(true)).not.toMatch(/\x1b\[(3\d|9\d)m/);
      expect(await until('the exit', (s) => s.includes('EXIT='))).toContain('EXIT=0');
    });

    it('Ctrl-C cancels and waits for the end (exit 130); a second Ctrl-C detaches', async () => {
      startInTmux(['run', '--tags', 'web', '--', 'echo go; sleep 60']);
      await until('the script running', (s) => names.every((n) => s.includes(`[${n}] go`)));
      tmux('send-keys', '-t', session, 'C-c');
      const s = await until('the exit', (x) => x.includes('EXIT='));
      expect(s).toContain('cancelling execution');
      expect(s).toMatch(/^\S+ +cancelled +/m);
      expect(s).toContain('EXIT=130');
      tmux('kill-server');

      // The script ignores SIGTERM, so it outlives the cancel by killGraceSeconds (5 s).
      startInTmux(['run', '--tags', 'web', '--', 'trap "" TERM; echo go; sleep 60']);
      await until('the script running', (x) => names.every((n) => x.includes(`[${n}] go`)));
      // The first asks to cancel, the second detaches before the end (the cancel request
      // has gone out by then: the execution ends cancelled).
      tmux('send-keys', '-t', session, 'C-c');
      await until('the cancel note', (x) => x.includes('cancelling execution'));
      tmux('send-keys', '-t', session, 'C-c');
      const d = await until('the exit', (x) => x.includes('EXIT='));
      const id = /detached; execution ([0-9a-f-]{36}) goes on/.exec(d)?.[1];
      expect(id).toBeDefined();
      expect(d).toContain('EXIT=130');
      expect(d).not.toMatch(/^SERVER +STATUS/m); // it did not wait for the end
      const ended = await cli(['status', id!, '--wait', '--json']);
      expect(JSON.parse(ended.stdout).status).toBe('cancelled');
    });
  });
});
