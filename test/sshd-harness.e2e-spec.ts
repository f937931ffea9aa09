/**
 * Proves the sshd harness against the real OpenSSH client and the ssh2 library.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { Client, ConnectConfig } from 'ssh2';
import {
  ensureTestUser,
  SshdInstance,
  sh,
  sha256Fingerprint,
  startSshd,
  stopAll,
} from './support/sshd';

interface SshRun {
  stdout: string;
  stderr: string;
  code: number | null;
}

/** known_hosts file pinning `hostPublicKey` (default: the instance's own host key). */
async function knownHostsFile(s: SshdInstance, hostPublicKey = s.hostPublicKey): Promise<string> {
  const file = path.join(
    s.dir,
    `known_hosts_${createHash('sha1').update(hostPublicKey).digest('hex')}`,
  );
  await writeFile(file, `[${s.host}]:${s.port} ${hostPublicKey}\n`);
  return file;
}

async function sshArgs(
  s: SshdInstance,
  keyFile: string,
  user = s.username,
  hostPublicKey = s.hostPublicKey,
): Promise<string[]> {
  return [
    '-F',
    '/dev/null',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `UserKnownHostsFile=${await knownHostsFile(s, hostPublicKey)}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'ConnectTimeout=5',
    '-i',
    keyFile,
    '-p',
    String(s.port),
    `${user}@${s.host}`,
  ];
}

/** Spawns /usr/bin/ssh; `until` resolves early (leaving it running) when stdout/stderr matches. */
function ssh(args: string[], timeoutMs = 15_000) {
  const child = spawn('/usr/bin/ssh', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: SshRun = { stdout: '', stderr: '', code: null };
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out.stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out.stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<SshRun>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      out.code = code;
      resolve(out);
    }),
  );
  const until = async (re: RegExp, ms = 10_000): Promise<void> => {
    const deadline = Date.now() + ms;
    while (!re.test(out.stdout + out.stderr)) {
      if (out.code !== null || Date.now() > deadline) {
        throw new Error(`ssh output never matched ${re}: ${JSON.stringify(out)}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return { child, done, until, out };
}

function ssh2Exec(
  config: ConnectConfig,
  command: string,
): Promise<{ stdout: string; code: number }> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    c.on('error', reject);
    c.on('ready', () => {
      c.exec(command, (err, stream) => {
        if (err) {
          c.end();
          reject(err);
          return;
        }
        let stdout = '';
        stream.on('data', (d: Buffer) => (stdout += d.toString()));
        stream.stderr.on('data', () => undefined);
        stream.on('close', (code: number) => {
          c.end();
          resolve({ stdout, code });
        });
      });
    });
    c.connect({ readyTimeout: 10_000, ...config });
  });
}

describe('sshd test harness (real OpenSSH)', () => {
  let s: SshdInstance;

  beforeAll(async () => {
    s = await startSshd();
  });

  afterAll(async () => {
    await stopAll();
  });

  it('starts a listener with a fresh host key and config', async () => {
    expect(s.host).toBe('127.0.0.1');
    expect(s.port).toBeGreaterThan(0);
    expect(s.username).toBe('root');
    expect(s.hostPublicKey).toMatch(/^ssh-ed25519 AAAA[\w+/=]+$/);
    expect(s.hostKeyFingerprint).toMatch(/^SHA256:[\w+/]{43}$/);
    expect(s.hostKeyFingerprint).toBe(sha256Fingerprint(s.hostPublicKey));
    const keygen = await sh(`ssh-keygen -lf '${path.join(s.dir, 'ssh_host_ed25519_key.pub')}'`);
    expect(keygen.stdout.split(/\s+/)[1]).toBe(s.hostKeyFingerprint);
    expect((await sh(`ps -o args= -p ${s.pid}`)).stdout).toContain('/usr/sbin/sshd -D -f');
    const config = await readFile(path.join(s.dir, 'sshd_config'), 'utf8');
    expect(config).toContain('ListenAddress 127.0.0.1');
    expect(config).toContain('AllowTcpForwarding yes');
    expect(config).toContain('MaxStartups 100:30:200');
    expect(config).toContain('PasswordAuthentication yes');
    expect(s.logs()).toMatch(/Server listening on 127\.0\.0\.1 port \d+/);
  });

  it('accepts the OpenSSH client with the authorized key and a pinned host key', async () => {
    expect(s.key.privateKeyPath).toBeDefined();
    const r = await ssh([...(await sshArgs(s, s.key.privateKeyPath as string)), 'echo ok']).done;
    expect(r).toMatchObject({ code: 0, stdout: 'ok\n' });
  });

  it('rejects a client that pins a different host key', async () => {
    const other = await startSshd();
    try {
      const args = await sshArgs(
        s,
        s.key.privateKeyPath as string,
        s.username,
        other.hostPublicKey,
      );
      const r = await ssh([...args, 'echo ok']).done;
      expect(r.code).toBe(255);
      expect(r.stderr).toMatch(/HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
      expect(other.port).not.toBe(s.port);
      expect(other.hostKeyFingerprint).not.toBe(s.hostKeyFingerprint);
    } finally {
      await other.stop();
    }
    expect(existsSync(other.dir)).toBe(false);
  });

  it('host key fingerprint matches what an ssh2 client sees', async () => {
    let seen = '';
    const r = await ssh2Exec(
      {
        host: s.host,
        port: s.port,
        username: s.username,
        privateKey: s.key.privateKey,
        hostVerifier: (key: Buffer) => {
          seen = 'SHA256:' + createHash('sha256').update(key).digest('base64').replace(/=+$/, '');
          return true;
        },
      },
      'echo hi',
    );
    expect(r).toEqual({ stdout: 'hi\n', code: 0 });
    expect(seen).toBe(s.hostKeyFingerprint);
  });

  it('addClientKey authorizes ed25519 and passphrase-protected rsa keys', async () => {
    const ed = await s.addClientKey('ed25519');
    expect(ed.publicKey).toMatch(/^ssh-ed25519 /);
    const r1 = await ssh([...(await sshArgs(s, ed.privateKeyPath as string)), 'echo ed']).done;
    expect(r1).toMatchObject({ code: 0, stdout: 'ed\n' });

    const rsa = await s.addClientKey('rsa', 'sekrit phrase');
    expect(rsa).toMatchObject({ type: 'rsa', passphrase: 'sekrit phrase' });
    expect(rsa.publicKey).toMatch(/^ssh-rsa /);
    expect(rsa.privateKey).toContain('BEGIN OPENSSH ' + 'PRIVATE KEY'); // generated at run time
    const r2 = await ssh2Exec(
      {
        host: s.host,
        port: s.port,
        username: s.username,
        privateKey: rsa.privateKey,
        passphrase: rsa.passphrase,
      },
      'echo rsa',
    );
    expect(r2).toEqual({ stdout: 'rsa\n', code: 0 });
  });

  it('killConnections drops a running session but keeps the listener', async () => {
    const args = await sshArgs(s, s.key.privateKeyPath as string);
    const client = ssh([...args, 'echo started; sleep 30'], 40_000);
    await client.until(/started/);
    const before = await sh(`pgrep -P ${s.pid}`);
    expect(before.stdout.trim()).not.toBe('');

    const t0 = Date.now();
    await s.killConnections();
    const r = await client.done;
    expect(r.code).toBe(255);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect((await sh(`pgrep -P ${s.pid}`)).stdout.trim()).toBe('');

    const again = await ssh([...args, 'echo ok']).done;
    expect(again).toMatchObject({ code: 0, stdout: 'ok\n' });
  });

  it('sh() reports output, exit codes and timeouts', async () => {
    expect(await sh('echo out; echo err >&2; exit 3')).toEqual({
      stdout: 'out\n',
      stderr: 'err\n',
      code: 3,
    });
    const t = await sh('sleep 5', { timeoutMs: 200 });
    expect(t.code).toBe(124);
  });

  describe('AllowTcpForwarding', () => {
    it('refuses a remote forward when disabled', async () => {
      const nofwd = await startSshd({ allowTcpForwarding: false });
      try {
        const config = await readFile(path.join(nofwd.dir, 'sshd_config'), 'utf8');
        expect(config).toContain('AllowTcpForwarding no');
        const args = await sshArgs(nofwd, nofwd.key.privateKeyPath as string);
        const r = await ssh(
          ['-o', 'ExitOnForwardFailure=yes', '-R', '0:127.0.0.1:1', '-N', ...args],
          15_000,
        ).done;
        expect(r.code).toBe(255);
        expect(r.stderr).toMatch(/remote port forwarding failed/i);
      } finally {
        await nofwd.stop();
      }
    });

    it('allows the same remote forward by default (control)', async () => {
      const args = await sshArgs(s, s.key.privateKeyPath as string);
      const client = ssh(
        ['-o', 'ExitOnForwardFailure=yes', '-R', '0:127.0.0.1:1', '-N', ...args],
        15_000,
      );
      await client.until(/Allocated port \d+ for remote forward/);
      client.child.kill('SIGTERM');
      await client.done;
    });
  });

  describe('password auth as cronium-test', () => {
    let user: { username: string; password: string };

    beforeAll(async () => {
      user = await ensureTestUser();
      // idempotent
      expect(await ensureTestUser()).toEqual(user);
    });

    it('logs in with the password over ssh2', async () => {
      const r = await ssh2Exec(
        { host: s.host, port: s.port, username: user.username, password: user.password },
        'id -un; echo $HOME',
      );
      expect(r).toEqual({ stdout: `${user.username}\n/home/${user.username}\n`, code: 0 });
    });

    it('rejects a wrong password', async () => {
      await expect(
        ssh2Exec(
          { host: s.host, port: s.port, username: user.username, password: 'wrong' },
          'id -un',
        ),
      ).rejects.toThrow(/authentication methods failed/);
    });

    it('the shared authorized_keys works for cronium-test too', async () => {
      const r = await ssh([
        ...(await sshArgs(s, s.key.privateKeyPath as string, user.username)),
        'id -un',
      ]).done;
      expect(r).toMatchObject({ code: 0, stdout: `${user.username}\n` });
    });

    it('refuses passwords when passwordAuth is false', async () => {
      const nopw = await startSshd({
        passwordAuth: false,
        maxSessions: 3,
        extraConfig: 'ClientAliveInterval 30',
      });
      try {
        const config = await readFile(path.join(nopw.dir, 'sshd_config'), 'utf8');
        expect(config).toMatch(/PasswordAuthentication no\n/);
        expect(config).toMatch(/MaxSessions 3\n/);
        expect(config).toMatch(/ClientAliveInterval 30\n$/);
        await expect(
          ssh2Exec(
            { host: nopw.host, port: nopw.port, username: user.username, password: user.password },
            'id -un',
          ),
        ).rejects.toThrow(/authentication methods failed/);
      } finally {
        await nopw.stop();
      }
    });
  });

  it('stop() ends the listener and removes the temp dir', async () => {
    const t = await startSshd();
    const args = await sshArgs(t, t.key.privateKeyPath as string);
    const client = ssh([...args, 'echo started; sleep 30'], 40_000);
    await client.until(/started/);
    await t.stop();
    expect((await client.done).code).toBe(255);
    expect(existsSync(t.dir)).toBe(false);
    expect((await sh(`kill -0 ${t.pid}`)).code).not.toBe(0);
    expect((await sh(`pgrep -f 'sleep 30' -P ${t.pid}`)).stdout).toBe('');
    await t.stop(); // idempotent
  });
});
