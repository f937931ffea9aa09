import { logsOf, registerServer, startApp, TestApp, waitForExecution } from './support/app';
import { sample } from './support/metrics';
import { freePort, SshdInstance, startSshd } from './support/sshd';

/**
 * Jump hosts (ProxyJump) against real sshd's: the jump forwards only to 127.0.0.2
 * (PermitOpen), where the targets listen; the service is given that address plus the jump.
 * A jump that is down fails every target behind it, which a direct connection would not.
 */
describe('jump hosts (real sshd)', () => {
  let jump: SshdInstance;
  let targets: SshdInstance[];
  let t: TestApp;
  let jumpId: string;
  /** 10 servers behind the jump, each its own pooled connection (its own client key). */
  const fleet: string[] = [];

  const accepted = (s: SshdInstance) => (s.logs().match(/Accepted publickey/g) ?? []).length;
  const tunnelsTo = (port: number) =>
    (
      jump
        .logs()
        .match(
          new RegExp(`direct_tcpip: originator .*, target 127\\.0\\.0\\.2 port ${port}\\b`, 'g'),
        ) ?? []
    ).length;
  const metric = async (name: string, labels = '') =>
    sample((await t.http().get('/metrics')).text, name, labels);
  const submit = (serverIds: string[], body: Record<string, unknown> = {}) =>
    t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .send({
        script: { type: 'bash', content: 'echo "on $(hostname) as $CRONIUM_SERVER_ID"' },
        targets: { serverIds },
        ...body,
      });
  const run = async (serverIds: string[], body: Record<string, unknown> = {}) => {
    const res = await submit(serverIds, body);
    expect(res.status).toBe(202);
    return waitForExecution(t, res.body.id);
  };
  const patch = (id: string, body: Record<string, unknown>) =>
    t.http().patch(`/v1/servers/${id}`).set(t.auth).send(body);

  beforeAll(async () => {
    [jump, ...targets] = await Promise.all([
      startSshd({ logLevel: 'DEBUG1', extraConfig: 'PermitOpen 127.0.0.2:*' }),
      startSshd({ extraConfig: 'ListenAddress 127.0.0.2', maxSessions: 30 }),
      startSshd({ extraConfig: 'ListenAddress 127.0.0.2', maxSessions: 30 }),
    ]);
    t = await startApp();
    jumpId = await registerServer(t, jump, { name: 'jump-1', hostKey: jump.hostPublicKey });
    for (let i = 0; i < 10; i++) {
      const sshd = targets[i % 2];
      const key = i < 2 ? sshd.key : await sshd.addClientKey('ed25519');
      fleet.push(
        await registerServer(t, sshd, {
          name: `behind-${i}`,
          host: '127.0.0.2',
          privateKey: key.privateKey,
          hostKey: sshd.hostPublicKey,
          baseDir: `${sshd.dir}/base-${i}`,
          jumpServerId: jumpId,
        }),
      );
    }
  });
  afterAll(async () => {
    await t?.close();
    await Promise.all([jump, ...(targets ?? [])].map((s) => s?.stop()));
  });

  it('runs a job on a server behind the jump, tunnelled through it, and shows jumpServerId', async () => {
    const view = await t.http().get(`/v1/servers/${fleet[0]}`).set(t.auth);
    expect(view.body.jumpServerId).toBe(jumpId);
    const ex = await run([fleet[0]]);
    expect(ex.status).toBe('succeeded');
    const out = (await logsOf(t, ex.id)).filter((l: any) => l.stream === 'stdout');
    expect(out.map((l: any) => l.text)).toEqual([expect.stringMatching(`as ${fleet[0]}$`)]);
    // The jump host was asked to open the connection to the target.
    expect(tunnelsTo(targets[0].port)).toBeGreaterThanOrEqual(1);
    expect(
      await metric('cronium_ssh_jump_tunnels_total', 'result="opened"'),
    ).toBeGreaterThanOrEqual(1);
    expect(await metric('cronium_ssh_jump_connections_total')).toBe(1);
    expect(await metric('cronium_ssh_jump_tunnels')).toBeGreaterThanOrEqual(1);
  });

  it('runs a fleet of 10 behind one jump over one shared jump connection', async () => {
    const ex = await run(fleet);
    expect(ex.status).toBe('succeeded');
    expect(ex.targets).toHaveLength(10);
    for (const tg of ex.targets) expect(tg.status).toBe('succeeded');
    const lines = (await logsOf(t, ex.id)).filter((l: any) => l.stream === 'stdout');
    expect(lines.map((l: any) => l.text.split(' as ')[1]).sort()).toEqual([...fleet].sort());
    // One login on the jump for all of them (the first test's, still pooled) ...
    expect(accepted(jump)).toBe(1);
    expect(await metric('cronium_ssh_jump_connections_total')).toBe(1);
    // ... and one tunnel per pooled connection to a target (10 client keys: 10 of them).
    expect(tunnelsTo(targets[0].port) + tunnelsTo(targets[1].port)).toBe(10);
    expect(await metric('cronium_ssh_jump_tunnels')).toBe(10);
    expect(await metric('cronium_ssh_jump_connections')).toBe(1);
  });

  it('runtime helpers in api mode work behind the jump (the reverse tunnel rides the target connection)', async () => {
    const ex = await run([fleet[1]], {
      helperMode: 'api',
      script: {
        type: 'bash',
        content:
          'curl -sf -H "Authorization: Bearer $CRONIUM_API_TOKEN" -H "Content-Type: application/json" ' +
          '-X POST -d \'{"data":{"via":"jump"}}\' "$CRONIUM_API_ENDPOINT/runtime/v1/output"',
      },
    });
    expect(ex.status).toBe('succeeded');
    expect(ex.targets[0].helperMode).toBe('api');
    expect(ex.targets[0].output).toEqual({ via: 'jump' });
  });

  it('a wrong pin at the jump fails the targets with host_key_mismatch naming the jump; at the target, naming the target', async () => {
    // Editing the jump evicts the pooled connections behind it.
    expect((await patch(jumpId, { hostKey: targets[0].hostPublicKey })).status).toBe(200);
    let ex = await run([fleet[2]]);
    expect(ex.status).toBe('failed');
    expect(ex.targets[0].error.code).toBe('host_key_mismatch');
    expect(ex.targets[0].error.message).toMatch(
      /^via jump host jump-1 \(127\.0\.0\.1:\d+, in front of behind-2\): host key mismatch for jump-1/,
    );
    expect((await patch(jumpId, { hostKey: jump.hostPublicKey })).status).toBe(200);
    expect((await run([fleet[2]])).status).toBe('succeeded');

    expect((await patch(fleet[3], { hostKey: jump.hostPublicKey })).status).toBe(200);
    ex = await run([fleet[3]]);
    expect(ex.targets[0].error.code).toBe('host_key_mismatch');
    expect(ex.targets[0].error.message).toMatch(/^host key mismatch for behind-3: expected/);
    expect((await patch(fleet[3], { hostKey: targets[1].hostPublicKey })).status).toBe(200);
    expect((await run([fleet[3]])).status).toBe('succeeded');
  });

  it('refuses to delete a jump in use (409) and leaves it working', async () => {
    const res = await t.http().delete(`/v1/servers/${jumpId}`).set(t.auth);
    expect(res.status).toBe(409);
    expect(res.body.message).toMatch(
      /is the jump host of "behind-0", .* and 5 more; change or clear their jumpServerId first/,
    );
    expect((await t.http().get(`/v1/servers/${jumpId}`).set(t.auth)).status).toBe(200);
    expect((await run([fleet[4]])).status).toBe('succeeded');
  });

  it('chains: a server behind a jump host that is itself behind one; a wrong pin in the middle names that hop', async () => {
    // service → jump-1 → hop-2 (targets[1] on 127.0.0.2) → chained (targets[0] on 127.0.0.2)
    const hop2 = await registerServer(t, targets[1], {
      name: 'hop-2',
      host: '127.0.0.2',
      hostKey: targets[1].hostPublicKey,
      jumpServerId: jumpId,
    });
    const chained = await registerServer(t, targets[0], {
      name: 'chained',
      host: '127.0.0.2',
      hostKey: targets[0].hostPublicKey,
      baseDir: `${targets[0].dir}/base-chained`,
      jumpServerId: hop2,
    });
    expect((await run([chained])).status).toBe('succeeded');
    expect((await patch(hop2, { hostKey: jump.hostPublicKey })).status).toBe(200);
    const ex = await run([chained]);
    expect(ex.targets[0].error.code).toBe('host_key_mismatch');
    expect(ex.targets[0].error.message).toMatch(
      /^via jump host hop-2 \(127\.0\.0\.2:\d+, in front of chained\): host key mismatch for hop-2/,
    );
    expect((await t.http().delete(`/v1/servers/${chained}`).set(t.auth)).status).toBe(204);
    expect((await t.http().delete(`/v1/servers/${hop2}`).set(t.auth)).status).toBe(204);
  });

  it('a target the jump host cannot reach fails connect_failed saying so (the jump itself is fine)', async () => {
    const port = await freePort(); // nothing listens there
    const id = await registerServer(t, targets[0], {
      name: 'unreachable-behind',
      host: '127.0.0.2',
      port,
      jumpServerId: jumpId,
    });
    const ex = await run([id]);
    expect(ex.targets[0].error).toEqual(
      expect.objectContaining({
        code: 'connect_failed',
        message: expect.stringMatching(
          new RegExp(`^jump host jump-1 cannot open a connection to 127\\.0\\.0\\.2:${port}: `),
        ),
      }),
    );
    expect((await run([fleet[7]])).status).toBe('succeeded');
    expect((await t.http().delete(`/v1/servers/${id}`).set(t.auth)).status).toBe(204);
  });

  it('with the jump down, every target behind it fails connect_failed naming the jump (nothing went around it)', async () => {
    await jump.crash();
    try {
      const ex = await run(fleet.slice(0, 4));
      expect(ex.status).toBe('failed');
      for (const tg of ex.targets) {
        expect(tg.error.code).toMatch(/^(connect_failed|connection_lost)$/);
      }
      // A fresh connect (not a pooled one lost on the way) names the hop.
      const again = await run([fleet[5]]);
      expect(again.targets[0].error).toEqual(
        expect.objectContaining({
          code: 'connect_failed',
          message: expect.stringMatching(
            /^via jump host jump-1 \(127\.0\.0\.1:\d+, in front of behind-5\): cannot connect/,
          ),
        }),
      );
    } finally {
      await jump.restart();
    }
    expect((await run([fleet[6]])).status).toBe('succeeded');
  });
});
