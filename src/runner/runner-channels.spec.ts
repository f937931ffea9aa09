/**
 * Standbys and their ready word, with fake channels: when a standby counts as ready or
 * dead, and what a job taking one gets (its login noise, the start of a word that had not
 * fully arrived), through to a RunnerSession that strips the word.
 */
import { EventEmitter } from 'node:events';
import type { ClientChannel } from 'ssh2';
import type { PooledConnection } from '../ssh/ssh.types';
import { OutputCapture } from './output-capture';
import { buildRunPayload } from './protocol';
import { RunnerChannels, standbyState } from './runner-channels';
import { RunnerSession } from './runner-session';

class FakeChannel extends EventEmitter {
  stderr = new EventEmitter();
  written: Buffer[] = [];
  closed = false;
  write(b: Buffer | string): boolean {
    this.written.push(Buffer.from(b));
    return true;
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    setImmediate(() => this.emit('close'));
  }
  out(s: string): void {
    this.emit('data', Buffer.from(s));
  }
}

function fakeConn() {
  const opened: FakeChannel[] = [];
  const closeListeners: (() => void)[] = [];
  const conn = {
    closed: false,
    exec: (_command: string) => {
      const ch = new FakeChannel();
      opened.push(ch);
      return Promise.resolve(ch as unknown as ClientChannel);
    },
    onClose: (l: () => void) => {
      closeListeners.push(l);
      return () => undefined;
    },
    destroy: () => undefined,
  } as unknown as PooledConnection;
  return { conn, opened };
}

const tick = () => new Promise((r) => setImmediate(r));
const b = (s: string) => Buffer.from(s, 'latin1');
const noRetry = { attempts: 1, initialDelayMs: 1, factor: 1, maxDelayMs: 1 };

describe('standbyState', () => {
  it('is ready on exactly the standby word, maybe on a start of it, else dead', () => {
    expect(standbyState(b('CRONIUM2 standby 2.1.0\n'))).toBe('ready');
    for (const s of ['', 'C', 'CRONIUM2 st', 'CRONIUM2 standby ', 'CRONIUM2 standby 2.1'])
      expect(standbyState(b(s))).toBe('maybe');
    for (const s of [
      'sh: 1: cannot open runner.sh\n',
      'CRONIUM2 error unsafe path (owned by another user): /x\n',
      'CRONIUM2 standby 2.1.0\nmore',
      'CRONIUM2 standby 2 1\n',
      'CRONIUM2 standby \n',
      'hello',
      `CRONIUM2 standby ${'x'.repeat(200)}`,
    ])
      expect(standbyState(b(s))).toBe('dead');
  });
});

/** A prewarming RunnerChannels whose first job's channel has closed (standbys opening). */
async function afterFirstJob() {
  const f = fakeConn();
  const rc = new RunnerChannels(true, noRetry);
  const first = (await rc.open(f.conn, 'run')) as unknown as FakeChannel;
  first.close();
  await tick();
  await tick();
  return { f, rc };
}

describe('RunnerChannels standbys', () => {
  /** A job channel that closes, so that the standbys are prepared (two for one command). */
  async function withStandby() {
    const { f, rc } = await afterFirstJob();
    expect(f.opened).toHaveLength(3);
    return { ...f, rc, standby: f.opened[1] };
  }

  it('keeps two standbys for one command, so a job right after another finds one ready; a second base dir gets the second place', async () => {
    const { conn, rc, opened } = await withStandby();
    opened[2].out('CRONIUM2 standby 2.1.0\n'); // the younger one is ready first
    const a = (await rc.open(conn, 'run')) as unknown as FakeChannel;
    expect(a).toBe(opened[2]);
    const b2 = (await rc.open(conn, 'run')) as unknown as FakeChannel;
    expect(b2).toBe(opened[1]);
    expect(opened).toHaveLength(3); // neither job opened a channel of its own
    a.close();
    b2.close();
    await tick();
    await tick();
    expect(opened).toHaveLength(5); // refilled to two
    // Another base dir on the same connection: one of run's two makes room for it.
    const other = (await rc.open(conn, 'run-other')) as unknown as FakeChannel;
    expect(other).toBe(opened[5]);
    other.close();
    await tick();
    await tick();
    expect(opened).toHaveLength(7);
    expect(opened[6].closed).toBe(false);
    expect(opened.slice(3, 5).filter((c) => c.closed)).toHaveLength(1);
  });

  it("a fan-out's job (refillAfter) opens no standby when its channel closes, only once the fan-out has ended", async () => {
    const f = fakeConn();
    const rc = new RunnerChannels(true, noRetry);
    let end!: () => void;
    const fanOut = new Promise<void>((r) => (end = r));
    const job = (await rc.open(f.conn, 'run', true, fanOut)) as unknown as FakeChannel;
    job.close();
    for (let i = 0; i < 5; i++) await tick();
    expect(f.opened).toHaveLength(1); // closed, but the fan-out still runs
    end();
    await tick();
    await tick();
    expect(f.opened).toHaveLength(3); // then its two standbys
    // An execution that failed refills all the same.
    const next = (await rc.open(
      f.conn,
      'run',
      true,
      Promise.reject(new Error('x')),
    )) as unknown as FakeChannel;
    next.close();
    for (let i = 0; i < 5; i++) await tick();
    expect(f.opened).toHaveLength(4);
  });

  it("a second base dir gets its place even while the first one's second standby is still opening", async () => {
    // exec answers only when told to: the sessions of a slow login
    const opened: { command: string; ch: FakeChannel; land: () => void }[] = [];
    const conn = {
      closed: false,
      exec: (command: string) =>
        new Promise<ClientChannel>((resolve) => {
          const ch = new FakeChannel();
          opened.push({ command, ch, land: () => resolve(ch as unknown as ClientChannel) });
        }),
      onClose: () => () => undefined,
      destroy: () => undefined,
    } as unknown as PooledConnection;
    const rc = new RunnerChannels(true, noRetry);
    const job = async (command: string) => {
      const p = rc.open(conn, command);
      await tick();
      opened[opened.length - 1].land();
      ((await p) as unknown as FakeChannel).close();
      await tick();
      await tick();
    };
    await job('run'); // two standbys for run are asked for; neither has landed
    expect(opened.map((o) => o.command)).toEqual(['run', 'run', 'run']);
    await job('run-other'); // the connection is full of run's, both still opening
    expect(opened.map((o) => o.command)).toEqual(['run', 'run', 'run', 'run-other', 'run-other']);
    for (const o of opened.slice(1)) o.land();
    await tick();
    await tick();
    const open = (command: string) =>
      opened.slice(1).filter((o) => o.command === command && !o.ch.closed && o !== opened[3]);
    expect(open('run')).toHaveLength(1); // its second made room when it landed
    expect(open('run-other')).toHaveLength(1);
  });

  it('a standby that said its word (after login noise on stderr) is taken, the word consumed', async () => {
    const { conn, rc, standby, opened } = await withStandby();
    standby.stderr.emit('data', b('Could not chdir to home directory /nonexistent\n'));
    standby.out('CRONIUM2 stan');
    standby.out('dby 2.1.0\n');
    const ch = await rc.open(conn, 'run');
    expect(ch).toBe(standby);
    expect(opened).toHaveLength(3);
    expect(rc.takeEarly(ch)).toBeNull();
    expect(rc.takeNoise(ch)?.toString()).toContain('Could not chdir');
  });

  it('a standby whose word has not fully arrived is taken at once, with what came of it', async () => {
    const { conn, rc, standby } = await withStandby();
    standby.out('CRONIUM2 sta');
    const ch = await rc.open(conn, 'run');
    expect(ch).toBe(standby);
    expect(rc.takeEarly(ch)?.toString()).toBe('CRONIUM2 sta');
    expect(rc.takeEarly(ch)).toBeNull();
  });

  it('other stdout before the payload, or the channel ending, makes it dead: the job takes the other', async () => {
    for (const kill of [
      (c: FakeChannel) => c.out('sh: 0: cannot open /x/runner.sh: No such file\n'),
      (c: FakeChannel) => {
        c.out('CRONIUM2 standby 2.1.0\n');
        c.out('CRONIUM2 error unexpected end of input\n');
      },
      (c: FakeChannel) => c.emit('exit', 127),
    ]) {
      const { conn, rc, standby, opened } = await withStandby();
      kill(standby);
      const ch = await rc.open(conn, 'run');
      expect(ch).not.toBe(standby);
      expect(ch).toBe(opened[2]);
      expect(opened).toHaveLength(3);
      expect(standby.closed).toBe(true);
    }
  });
});

describe('RunnerSession and the standby word', () => {
  function session(rc: RunnerChannels, conn: PooledConnection) {
    const stdout: string[] = [];
    const limits = { capBytes: 1 << 20, maxLineBytes: 4096 };
    const capture = (into: string[]) =>
      new OutputCapture(
        limits,
        (l) => into.push(l),
        () => undefined,
      );
    const ready: string[] = [];
    const s = new RunnerSession(conn, rc, {
      killGraceSeconds: 1,
      heartbeatMs: 60_000,
      stdout: capture(stdout),
      stderr: capture([]),
      onReady: (r) => ready.push(r.version),
      onNoise: () => undefined,
    });
    return { s, stdout, ready };
  }

  const request = {
    runId: 'r1',
    scriptType: 'bash' as const,
    graceSeconds: 1,
    timeoutSeconds: 60,
    leaseSeconds: 30,
    env: {},
    script: 'echo hello',
  };

  async function runOn(
    rc: RunnerChannels,
    conn: PooledConnection,
    ch: () => FakeChannel,
    rest: string,
  ) {
    const t = session(rc, conn);
    const done = t.s.start('run', request);
    await tick();
    const c = ch();
    expect(Buffer.concat(c.written).subarray(0, 20)).toEqual(
      buildRunPayload(request).subarray(0, 20),
    );
    c.out(rest);
    c.emit('end');
    const exit = await done;
    return { exit, ...t };
  }

  const follow = 'CRONIUM2 ready 2.1.0 Linux x86_64\nhello\n\nCRONIUM2 exit 0 exit\n';

  it('strips the word on a fresh channel', async () => {
    const f = fakeConn();
    const rc = new RunnerChannels(false, noRetry);
    const r = await runOn(rc, f.conn, () => f.opened[0], `CRONIUM2 standby 2.1.0\n${follow}`);
    expect(r.exit).toMatchObject({ started: true, ended: true, exitCode: 0 });
    expect(r.stdout).toEqual(['hello']);
    expect(r.ready).toEqual(['2.1.0']);
  });

  it('strips the rest of a word the standby had only partly received', async () => {
    const { f, rc } = await afterFirstJob();
    f.opened[1].out('CRONIUM2 stand');
    const r = await runOn(rc, f.conn, () => f.opened[1], `by 2.1.0\n${follow}`);
    expect(r.exit).toMatchObject({ started: true, ended: true, exitCode: 0 });
    expect(r.stdout).toEqual(['hello']);
  });

  it('a standby that was ready: the job sees only the ready line', async () => {
    const { f, rc } = await afterFirstJob();
    f.opened[1].out('CRONIUM2 standby 2.1.0\n');
    const r = await runOn(rc, f.conn, () => f.opened[1], follow);
    expect(r.exit).toMatchObject({ started: true, ended: true, exitCode: 0 });
    expect(r.stdout).toEqual(['hello']);
  });
});
