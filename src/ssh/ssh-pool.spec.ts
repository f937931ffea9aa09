import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  endpointOf,
  freePort,
  sh,
  SshdInstance,
  startSshd,
  stopAll,
} from '../../test/support/sshd';
import { AppConfig } from '../config/app-config';
import { loadConfig } from '../config/load-config';
import { TargetError } from '../executions/error-codes';
import { MetricsService } from '../metrics/metrics.service';
import { Connection } from './pooled-connection';
import { execCommand } from './run-command';
import { SshPool } from './ssh-pool.service';
import { HostKeyLearner, PooledConnection, SshEndpoint } from './ssh.types';

const TEST_YAML = path.resolve(__dirname, '../../config/test.yaml');
// A syntactically valid fingerprint that no real key has.
const WRONG_FP = 'SHA256:' + Buffer.alloc(32, 7).toString('base64').replace(/=+$/, '');

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Resolves with `p`'s value, or with `onTimeout` after `ms` (the timer never outlives the race). */
async function within<T, U>(p: Promise<T>, ms: number, onTimeout: U): Promise<T | U> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<U>((r) => (timer = setTimeout(() => r(onTimeout), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function waitFor(what: string, pred: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
}

/** Resolves when the connection reports it is gone. */
function closedSignal(conn: PooledConnection): Promise<void> {
  return new Promise((resolve) => conn.onClose(() => resolve()));
}

/** Whether a promise has settled within `ms`. */
async function settledWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  await delay(ms);
  return settled;
}

async function rejection(p: Promise<unknown>): Promise<any> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

/** "Connection from … port N on …" lines sshd logs (VERBOSE) for each accepted TCP connection. */
const connectionsLogged = (s: SshdInstance) =>
  (s.logs().match(/Connection from 127\.0\.0\.1 port \d+/g) ?? []).length;

describe('SshPool (real sshd)', () => {
  jest.setTimeout(60_000);
  let dir: string;
  let sshd: SshdInstance;
  let pools: SshPool[] = [];
  let serverSeq = 0;

  beforeAll(async () => {
    Logger.overrideLogger(['error']);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-pool-'));
    sshd = await startSshd();
  });

  afterEach(async () => {
    await Promise.all(pools.map((p) => p.onApplicationShutdown()));
    pools = [];
  });

  afterAll(async () => {
    await Promise.all(pools.map((p) => p.onApplicationShutdown()));
    await sshd?.stop();
    await stopAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function makeConfig(env: NodeJS.ProcessEnv = {}): AppConfig {
    return loadConfig({
      NODE_ENV: 'test',
      CRONIUM_CONFIG: TEST_YAML,
      CRONIUM_DATA_DIR: path.join(dir, 'data'),
      ...env,
    });
  }

  function makePool(tweak: (c: AppConfig) => void = () => undefined): {
    pool: SshPool;
    config: AppConfig;
  } {
    const config = makeConfig();
    tweak(config);
    const pool = new SshPool(config, new MetricsService());
    pools.push(pool);
    return { pool, config };
  }

  function endpoint(over: Partial<SshEndpoint> = {}): SshEndpoint {
    serverSeq++;
    return endpointOf(sshd, {
      serverId: `server-${serverSeq}`,
      serverName: `test-${serverSeq}`,
      ...over,
    });
  }

  it('reuses one connection for sequential acquires and runs commands on it', async () => {
    const { pool } = makePool();
    const ep = endpoint();
    const before = connectionsLogged(sshd);

    const first = await pool.acquire(ep);
    expect(first.connection.closed).toBe(false);
    expect(first.connection.hostKey.fingerprint).toBe(sshd.hostKeyFingerprint);
    expect(first.connection.hostKey.type).toBe('ssh-ed25519');
    const r1 = await execCommand(first.connection, 'echo hello; id -un');
    expect(r1.code).toBe(0);
    expect(r1.stdout).toBe(`hello\n${sshd.username}\n`);
    first.release();
    first.release(); // idempotent

    const second = await pool.acquire(ep);
    expect(second.connection.id).toBe(first.connection.id);
    const r2 = await execCommand(second.connection, 'exit 3');
    expect(r2.code).toBe(3);
    second.release();

    // a different server id with the same address and credentials shares the group
    const third = await pool.acquire({ ...ep, serverId: 'another-id' });
    expect(third.connection.id).toBe(first.connection.id);
    third.release();

    expect(pool.size).toBe(1);
    await delay(200);
    expect(connectionsLogged(sshd) - before).toBe(1);
  });

  it('concurrent first acquires share a single handshake', async () => {
    const { pool } = makePool();
    const ep = endpoint();
    const before = connectionsLogged(sshd);
    const leases = await Promise.all([pool.acquire(ep), pool.acquire(ep), pool.acquire(ep)]);
    expect(new Set(leases.map((l) => l.connection.id)).size).toBe(1);
    leases.forEach((l) => l.release());
    expect(pool.size).toBe(1);
    await delay(200);
    expect(connectionsLogged(sshd) - before).toBe(1);
  });

  it('different credentials get different connections', async () => {
    const { pool } = makePool();
    const other = await sshd.addClientKey('ed25519');
    const a = await pool.acquire(endpoint());
    const b = await pool.acquire(endpoint({ privateKey: other.privateKey }));
    expect(b.connection.id).not.toBe(a.connection.id);
    expect(pool.size).toBe(2);
    a.release();
    b.release();
  });

  it('with maxChannelsPerConnection=2 a third acquire waits for a released lease', async () => {
    const { pool } = makePool((c) => {
      c.ssh.maxChannelsPerConnection = 2;
      c.ssh.maxConnectionsPerServer = 1;
    });
    const ep = endpoint();
    const l1 = await pool.acquire(ep);
    const l2 = await pool.acquire(ep);
    expect(l2.connection.id).toBe(l1.connection.id);
    const conn = l1.connection as Connection;
    expect(conn.busy).toBe(2);

    const p3 = pool.acquire(ep);
    expect(await settledWithin(p3, 300)).toBe(false);
    expect(conn.slots.waiting).toBe(1);

    // both leased channels really are usable at once
    const [a, b] = await Promise.all([
      execCommand(l1.connection, 'echo one'),
      execCommand(l2.connection, 'echo two'),
    ]);
    expect([a.stdout, b.stdout]).toEqual(['one\n', 'two\n']);

    l1.release();
    const l3 = await p3;
    expect(l3.connection.id).toBe(l1.connection.id);
    expect(conn.busy).toBe(2);
    expect(pool.size).toBe(1); // no second connection was opened
    expect((await execCommand(l3.connection, 'echo three')).stdout).toBe('three\n');
    l2.release();
    l3.release();
    expect(conn.busy).toBe(0);
  });

  it('with every channel busy, a second connection to the server opens, up to maxConnectionsPerServer', async () => {
    const { pool } = makePool((c) => {
      c.ssh.maxChannelsPerConnection = 2;
      c.ssh.maxConnectionsPerServer = 2;
    });
    const ep = endpoint();
    const leases = [await pool.acquire(ep), await pool.acquire(ep)];
    leases.push(await pool.acquire(ep)); // the first connection is full: a second one
    leases.push(await pool.acquire(ep));
    const ids = new Set(leases.map((l) => l.connection.id));
    expect(ids.size).toBe(2);
    expect(pool.size).toBe(2);
    // four channels at once, two on each connection
    const outs = await Promise.all(leases.map((l, i) => execCommand(l.connection, `echo ${i}`)));
    expect(outs.map((o) => o.stdout)).toEqual(['0\n', '1\n', '2\n', '3\n']);
    // at the cap: the fifth waits for a slot
    const p5 = pool.acquire(ep);
    expect(await settledWithin(p5, 300)).toBe(false);
    expect(pool.size).toBe(2);
    leases[0].release();
    const l5 = await p5;
    expect(ids.has(l5.connection.id)).toBe(true);
    for (const l of [...leases.slice(1), l5]) l.release();
  });

  it('a waiting acquire is cancelled cleanly by its AbortSignal (abort and timeout)', async () => {
    const { pool } = makePool((c) => {
      c.ssh.maxChannelsPerConnection = 2;
      c.ssh.maxConnectionsPerServer = 1;
    });
    const ep = endpoint();
    const l1 = await pool.acquire(ep);
    const l2 = await pool.acquire(ep);
    const conn = l1.connection as Connection;

    const ac = new AbortController();
    const waiting = pool.acquire(ep, ac.signal);
    await delay(100);
    expect(conn.slots.waiting).toBe(1);
    ac.abort(new Error('caller gave up'));
    await expect(waiting).rejects.toThrow('caller gave up');
    expect(conn.slots.waiting).toBe(0);

    const started = Date.now();
    const err = await rejection(pool.acquire(ep, AbortSignal.timeout(300)));
    expect(err.name).toBe('TimeoutError');
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(conn.slots.waiting).toBe(0);

    // an already-aborted signal fails at once
    const aborted = new AbortController();
    aborted.abort(new Error('too late'));
    await expect(pool.acquire(ep, aborted.signal)).rejects.toThrow('too late');

    // the abandoned waiters took no slot: releasing frees capacity for new callers
    l1.release();
    expect(conn.busy).toBe(1);
    const l3 = await pool.acquire(ep, AbortSignal.timeout(5000));
    expect(l3.connection.id).toBe(conn.id);
    l2.release();
    l3.release();
    expect(conn.busy).toBe(0);
  });

  it('rejects a host key that does not match the pin with host_key_mismatch', async () => {
    const { pool } = makePool();
    const learner = jest.fn<Promise<boolean>, Parameters<HostKeyLearner>>(async () => true);
    pool.setHostKeyLearner(learner);
    const before = connectionsLogged(sshd);
    const err = await rejection(pool.acquire(endpoint({ hostKeyFingerprint: WRONG_FP })));
    expect(err).toBeInstanceOf(TargetError);
    expect(err.code).toBe('host_key_mismatch');
    expect(err.message).toContain(WRONG_FP);
    expect(err.message).toContain(sshd.hostKeyFingerprint);
    expect(learner).not.toHaveBeenCalled();
    expect(pool.size).toBe(0);
    await delay(200);
    expect(connectionsLogged(sshd) - before).toBe(1); // not retried
  });

  it('a pin that changed invalidates the pooled connection', async () => {
    const { pool } = makePool();
    const ep = endpoint();
    const lease = await pool.acquire(ep);
    const closed = closedSignal(lease.connection);
    lease.release();
    const err = await rejection(pool.acquire({ ...ep, hostKeyFingerprint: WRONG_FP }));
    expect(err.code).toBe('host_key_mismatch');
    await closed;
    expect(lease.connection.closed).toBe(true);
    expect(pool.size).toBe(0);
  });

  it('TOFU: an unpinned server asks the learner with the real fingerprint', async () => {
    const { pool } = makePool();
    const ep = endpoint({ hostKeyFingerprint: null });
    const learner = jest.fn<Promise<boolean>, Parameters<HostKeyLearner>>(async () => true);
    pool.setHostKeyLearner(learner);
    const lease = await pool.acquire(ep);
    expect(learner).toHaveBeenCalledTimes(1);
    expect(learner).toHaveBeenCalledWith(
      ep.serverId,
      { fingerprint: sshd.hostKeyFingerprint, type: 'ssh-ed25519' },
      ep,
    );
    expect(lease.connection.hostKey.fingerprint).toBe(sshd.hostKeyFingerprint);
    expect((await execCommand(lease.connection, 'echo ok')).stdout).toBe('ok\n');
    lease.release();
  });

  it('TOFU: a learner that refuses the key fails the connect with host_key_mismatch', async () => {
    const { pool } = makePool();
    const ep = endpoint({ hostKeyFingerprint: null });
    const learner = jest.fn<Promise<boolean>, Parameters<HostKeyLearner>>(async () => false);
    pool.setHostKeyLearner(learner);
    const err = await rejection(pool.acquire(ep));
    expect(err).toBeInstanceOf(TargetError);
    expect(err.code).toBe('host_key_mismatch');
    expect(err.message).toContain(sshd.hostKeyFingerprint);
    expect(learner).toHaveBeenCalledTimes(1);
    expect(learner.mock.calls[0][1]).toEqual({
      fingerprint: sshd.hostKeyFingerprint,
      type: 'ssh-ed25519',
    });
    expect(pool.size).toBe(0);
  });

  it('TOFU: without a learner an unpinned key is refused', async () => {
    const { pool } = makePool();
    const err = await rejection(pool.acquire(endpoint({ hostKeyFingerprint: null })));
    expect(err.code).toBe('host_key_mismatch');
  });

  it('a key the server does not accept fails with auth_failed and is not retried', async () => {
    const { pool, config } = makePool((c) => {
      c.ssh.connectRetry = { attempts: 3, initialDelayMs: 50, factor: 1, maxDelayMs: 50 };
    });
    expect(config.ssh.connectRetry.attempts).toBe(3);
    const keyFile = path.join(dir, 'stranger_ed25519');
    const gen = await sh(`ssh-keygen -q -t ed25519 -N '' -C stranger -f '${keyFile}'`);
    expect(gen.code).toBe(0);
    const stranger = fs.readFileSync(keyFile, 'utf8');

    const before = connectionsLogged(sshd);
    const err = await rejection(pool.acquire(endpoint({ privateKey: stranger })));
    expect(err).toBeInstanceOf(TargetError);
    expect(err.code).toBe('auth_failed');
    expect(err.retryable).toBe(false);
    await delay(300);
    expect(connectionsLogged(sshd) - before).toBe(1);
    expect(sshd.logs()).toMatch(
      /Connection (closed|reset) by authenticating user|Failed publickey|Received disconnect/,
    );

    // an auth failure does not count against the host: the same pool still connects with a good key
    const ok = await pool.acquire(endpoint());
    ok.release();
  });

  it('an unparsable private key is auth_failed', async () => {
    const { pool } = makePool();
    const err = await rejection(pool.acquire(endpoint({ privateKey: 'not a key' })));
    expect(err.code).toBe('auth_failed');
  });

  it('an unreachable port fails with connect_failed, then the circuit opens and fails fast', async () => {
    const threshold = 3;
    const { pool } = makePool((c) => {
      c.ssh.connectRetry = { attempts: 2, initialDelayMs: 20, factor: 1, maxDelayMs: 20 };
      c.ssh.breaker = { failureThreshold: threshold, cooldownMs: 60_000 };
    });
    const port = await freePort(); // nothing listens there
    const ep = endpoint({ port });
    for (let i = 0; i < threshold; i++) {
      const err = await rejection(pool.acquire(ep));
      expect(err).toBeInstanceOf(TargetError);
      expect(err.code).toBe('connect_failed');
      expect(err.message).toMatch(/ECONNREFUSED|cannot connect/);
      expect(err.message).not.toMatch(/circuit open/);
    }
    const started = Date.now();
    const fast = await rejection(pool.acquire(ep));
    expect(Date.now() - started).toBeLessThan(1000);
    expect(fast).toBeInstanceOf(TargetError);
    expect(fast.code).toBe('connect_failed');
    expect(fast.message).toMatch(/circuit open/);
    expect(fast.message).toContain(`127.0.0.1:${port}`);

    // the breaker is per host:port — the live sshd is unaffected
    const ok = await pool.acquire(endpoint());
    ok.release();
  });

  it('connect attempts follow connectRetry.attempts, and an open circuit makes no attempt at all', async () => {
    // A TCP listener that drops every connection before the SSH handshake (transient).
    let accepted = 0;
    const dropper = net.createServer((sock) => {
      accepted++;
      sock.destroy();
    });
    await new Promise<void>((r) => dropper.listen(0, '127.0.0.1', r));
    const port = (dropper.address() as net.AddressInfo).port;
    try {
      const { pool } = makePool((c) => {
        c.ssh.connectRetry = { attempts: 3, initialDelayMs: 20, factor: 2, maxDelayMs: 100 };
        c.ssh.breaker = { failureThreshold: 2, cooldownMs: 60_000 };
      });
      const ep = endpoint({ port });
      const e1 = await rejection(pool.acquire(ep));
      expect(e1.code).toBe('connect_failed');
      expect(accepted).toBe(3);
      const e2 = await rejection(pool.acquire(ep));
      expect(e2.code).toBe('connect_failed');
      expect(accepted).toBe(6);
      const e3 = await rejection(pool.acquire(ep));
      expect(e3.message).toMatch(/circuit open/);
      await delay(200);
      expect(accepted).toBe(6);
    } finally {
      await new Promise<void>((r) => dropper.close(() => r()));
    }
  });

  it('after the cooldown one trial goes through and a success closes the circuit', async () => {
    // sshd on a port that first refuses: reuse the real sshd port via a proxy that can be switched on
    let forward = false;
    const proxy = net.createServer((sock) => {
      if (!forward) return sock.destroy();
      const up = net.connect(sshd.port, sshd.host);
      sock.pipe(up).pipe(sock);
      const end = () => {
        sock.destroy();
        up.destroy();
      };
      sock.on('error', end).on('close', end);
      up.on('error', end).on('close', end);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const port = (proxy.address() as net.AddressInfo).port;
    try {
      const { pool } = makePool((c) => {
        c.ssh.connectRetry = { attempts: 1, initialDelayMs: 0, factor: 1, maxDelayMs: 0 };
        c.ssh.breaker = { failureThreshold: 1, cooldownMs: 500 };
      });
      const ep = endpoint({ port });
      expect((await rejection(pool.acquire(ep))).message).not.toMatch(/circuit open/);
      expect((await rejection(pool.acquire(ep))).message).toMatch(/circuit open/);
      forward = true;
      expect((await rejection(pool.acquire(ep))).message).toMatch(/circuit open/);
      await delay(700);
      const lease = await pool.acquire(ep);
      expect(pool.size).toBe(1); // a fresh connection: every earlier attempt failed
      expect((await execCommand(lease.connection, 'echo via-proxy')).stdout).toBe('via-proxy\n');
      lease.release();
      await pool.onApplicationShutdown();
    } finally {
      await new Promise<void>((r) => proxy.close(() => r()));
    }
  });

  it('killed connections report closed, and the next acquire opens a fresh one', async () => {
    const { pool } = makePool();
    const ep = endpoint();
    const idle = await pool.acquire(ep);
    const conn = idle.connection;
    const onClose = jest.fn();
    conn.onClose(onClose);
    const closed = closedSignal(conn);
    idle.release();

    await sshd.killConnections();
    await closed;
    expect(conn.closed).toBe(true);
    expect(onClose).toHaveBeenCalledTimes(1);
    expect(pool.size).toBe(0);
    await expect(conn.exec('true')).rejects.toMatchObject({ code: 'connection_lost' });
    // a listener added after the close still hears about it
    await new Promise<void>((r) => conn.onClose(() => r()));

    const fresh = await pool.acquire(ep);
    expect(fresh.connection.id).not.toBe(conn.id);
    expect((await execCommand(fresh.connection, 'echo back')).stdout).toBe('back\n');
    fresh.release();
  });

  it('a lease held across a dropped connection sees connection_lost', async () => {
    const { pool } = makePool((c) => {
      c.ssh.maxChannelsPerConnection = 1;
      c.ssh.maxConnectionsPerServer = 1;
    });
    const ep = endpoint();
    const held = await pool.acquire(ep);
    const waiter = pool.acquire(ep);
    expect(await settledWithin(waiter, 200)).toBe(false);
    const running = execCommand(held.connection, 'sleep 30').then(
      () => 'finished',
      (e: Error) => e,
    );
    await delay(200);
    await sshd.killConnections();
    const ranOut = await running;
    expect(ranOut).toBeInstanceOf(Error);
    await waitFor('close', () => held.connection.closed);
    await expect(held.connection.exec('true')).rejects.toMatchObject({ code: 'connection_lost' });
    // the caller waiting for a slot on the dead connection is not left hanging
    const outcome = await within(
      waiter.then(
        (l) => ({ lease: l }),
        (e) => ({ error: e }),
      ),
      10_000,
      { hung: true },
    );
    expect(outcome).not.toHaveProperty('hung');
    if ('lease' in outcome) {
      expect(outcome.lease.connection.closed).toBe(false);
      outcome.lease.release();
    } else if ('error' in outcome) {
      expect(outcome.error.code).toBe('connection_lost');
    }
    held.release();
  });

  it('evictServer closes idle connections of that server and leaves busy ones alone', async () => {
    const { pool } = makePool();
    const other = await sshd.addClientKey('ed25519');
    const epIdle = endpoint();
    const epBusy = endpoint({ privateKey: other.privateKey });

    const idleLease = await pool.acquire(epIdle);
    const idleClosed = closedSignal(idleLease.connection);
    idleLease.release();
    const busy = await pool.acquire(epBusy);
    expect(pool.size).toBe(2);

    pool.evictServer('no-such-server');
    expect(pool.size).toBe(2);

    pool.evictServer(epIdle.serverId);
    await idleClosed;
    expect(idleLease.connection.closed).toBe(true);
    expect(pool.size).toBe(1);

    pool.evictServer(epBusy.serverId);
    await delay(300);
    expect(busy.connection.closed).toBe(false);
    expect((await execCommand(busy.connection, 'echo still-here')).stdout).toBe('still-here\n');
    busy.release();

    const again = await pool.acquire(epIdle);
    expect(again.connection.id).not.toBe(idleLease.connection.id);
    again.release();
  });

  it('closes connections idle for longer than idleTimeoutMs', async () => {
    const { pool } = makePool((c) => (c.ssh.idleTimeoutMs = 0));
    const lease = await pool.acquire(endpoint());
    const closed = closedSignal(lease.connection);
    // busy connections are never evicted
    await delay(2500);
    expect(lease.connection.closed).toBe(false);
    lease.release();
    expect(
      await within(
        closed.then(() => 'closed'),
        15_000,
        'still open',
      ),
    ).toBe('closed');
    expect(pool.size).toBe(0);
  });

  it('onApplicationShutdown closes every connection and refuses new acquires', async () => {
    const { pool } = makePool();
    const other = await sshd.addClientKey('ed25519');
    const a = await pool.acquire(endpoint());
    const b = await pool.acquire(endpoint({ privateKey: other.privateKey }));
    a.release();
    const closed = Promise.all([closedSignal(a.connection), closedSignal(b.connection)]);
    expect(pool.size).toBe(2);

    await pool.onApplicationShutdown();
    await closed;
    expect(a.connection.closed).toBe(true);
    expect(b.connection.closed).toBe(true);
    expect(pool.size).toBe(0);
    b.release();

    const err = await rejection(pool.acquire(endpoint()));
    expect(err).toBeInstanceOf(TargetError);
    expect(err.code).toBe('connect_failed');
    expect(err.message).toMatch(/shutting down/);
  });
});
