import { logsOf, registerServer, startApp, TestApp, waitForExecution } from './support/app';
import { SshdInstance, startSshd } from './support/sshd';

const INPUT = { msg: `hi 'q' "d" ✓`, list: [1, null] };
const TRICKY_KEY = `k e'y "q" $(x) ✓/x`;
const TRICKY_VAL = `v'al "q" $(touch /tmp/cronium-never) \`y\` \\ ✓\nline2`;

/** The same steps in each language: read input and context, set and read variables, set output and condition. */
const SCRIPTS: Record<string, string> = {
  bash: `
set -e
echo "input=$(cronium.input)"
ctx=$(cronium.event)
case $ctx in *"$CRONIUM_EXECUTION_ID"*) echo "event=true" ;; *) echo "event=false" ;; esac
cronium.setVariable k1 '{"a":[1,"x"]}'
echo "k1=$(cronium.getVariable k1)"
cronium.setVariable "$TRICKY_KEY" "$TRICKY_VAL"
v=$(cronium.getVariable "$TRICKY_KEY")
[ "$v" = "$TRICKY_VAL" ] && echo "tricky=true"
cronium.getVariable missing >/dev/null || echo "missing=true"
echo "plain text" | cronium.setVariable k2
echo "k2=$(cronium.getVariable k2)"
cronium.output '{"ok":true,"n":2}'
cronium.setCondition true
`,
  python: `
import json, os
print("input=" + json.dumps(cronium.input()))
print("event=" + json.dumps(cronium.event()["executionId"] == os.environ["CRONIUM_EXECUTION_ID"]))
cronium.setVariable("k1", {"a": [1, "x"]})
print("k1=" + json.dumps(cronium.getVariable("k1")))
cronium.set_variable(os.environ["TRICKY_KEY"], os.environ["TRICKY_VAL"])
print("tricky=" + json.dumps(cronium.get_variable(os.environ["TRICKY_KEY"]) == os.environ["TRICKY_VAL"]))
print("missing=" + json.dumps(cronium.getVariable("missing") is None))
cronium.setVariable("k2", "plain text")
print("k2=" + cronium.getVariable("k2"))
cronium.output({"ok": True, "n": 2})
cronium.setCondition(True)
`,
  node: `
(async () => {
  console.log('input=' + JSON.stringify(await cronium.input()));
  console.log('event=' + JSON.stringify((await cronium.event()).executionId === process.env.CRONIUM_EXECUTION_ID));
  await cronium.setVariable('k1', { a: [1, 'x'] });
  console.log('k1=' + JSON.stringify(await cronium.getVariable('k1')));
  await require('cronium').setVariable(process.env.TRICKY_KEY, process.env.TRICKY_VAL);
  console.log('tricky=' + JSON.stringify((await cronium.getVariable(process.env.TRICKY_KEY)) === process.env.TRICKY_VAL));
  console.log('missing=' + JSON.stringify((await cronium.getVariable('missing')) == null));
  await cronium.setVariable('k2', 'plain text');
  console.log('k2=' + (await cronium.getVariable('k2')));
  await cronium.output({ ok: true, n: 2 });
  await cronium.setCondition(true);
})().catch((e) => { console.error(e); process.exit(1); });
`,
};

describe('helper libraries: the same script in bash, python and node, in api and bundled mode', () => {
  let sshd: SshdInstance;
  let t: TestApp;
  let serverId: string;
  beforeAll(async () => {
    sshd = await startSshd();
    t = await startApp();
    serverId = await registerServer(t, sshd, { baseDir: `${sshd.dir}/base` });
  });
  afterAll(async () => {
    await t?.close();
    await sshd?.stop();
  });

  const cases = ['api', 'bundled'].flatMap((mode) =>
    ['bash', 'python', 'node'].map((lang) => [lang, mode]),
  );

  it.each(cases)('%s in %s mode', async (lang, mode) => {
    const userId = `${lang}-${mode}`;
    const res = await t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .send({
        helperMode: mode,
        userId,
        input: INPUT,
        env: { TRICKY_KEY, TRICKY_VAL },
        script: { type: lang, content: SCRIPTS[lang] },
        targets: { serverIds: [serverId] },
      });
    const ex = await waitForExecution(t, res.body.id);
    const logs = await logsOf(t, ex.id);
    const stdout = logs.filter((l) => l.stream === 'stdout').map((l) => l.text);
    const stderr = logs.filter((l) => l.stream === 'stderr').map((l) => l.text);
    expect({ status: ex.status, stderr }).toEqual({ status: 'succeeded', stderr: [] });
    expect(ex.targets[0]).toMatchObject({
      helperMode: mode,
      output: { ok: true, n: 2 },
      condition: true,
    });

    const printed = Object.fromEntries(
      stdout.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    expect(JSON.parse(printed.input)).toEqual(INPUT);
    expect(JSON.parse(printed.k1)).toEqual({ a: [1, 'x'] });
    expect(printed.k2).toBe('plain text');
    expect(printed.event).toBe('true');
    expect(printed.tricky).toBe('true');
    expect(printed.missing).toBe('true');

    const get = (key: string) =>
      t
        .http()
        .get(`/v1/variables/${userId}/${encodeURIComponent(key)}`)
        .set(t.auth);
    expect((await get('k1')).body.value).toEqual({ a: [1, 'x'] });
    expect((await get('k2')).body.value).toBe('plain text');
    expect((await get(TRICKY_KEY)).body.value).toBe(TRICKY_VAL);
  });

  it('24 bundled-mode jobs at once on one server (more than its MaxSessions): every one comes back with its own results', async () => {
    const ids = await Promise.all(
      Array.from({ length: 24 }, async (_, i) => {
        const res = await t
          .http()
          .post('/v1/jobs')
          .set(t.auth)
          .send({
            helperMode: 'bundled',
            input: { i },
            script: {
              type: 'bash',
              content: 'cronium.output "$(cronium.input)"; cronium.setCondition true',
            },
            targets: { serverIds: [serverId] },
          });
        expect(res.status).toBe(202);
        return res.body.id as string;
      }),
    );
    for (const [i, id] of ids.entries()) {
      const ex = await waitForExecution(t, id);
      expect(ex.status).toBe('succeeded');
      expect(ex.targets[0]).toMatchObject({
        helperMode: 'bundled',
        output: { i },
        condition: true,
      });
    }
  });

  it.each(['api', 'bundled'])(
    'a value nested 20,000 deep is refused (%s mode) with a clear error; the other results are kept',
    async (mode) => {
      const res = await t
        .http()
        .post('/v1/jobs')
        .set(t.auth)
        .send({
          helperMode: mode,
          userId: `deep-${mode}`,
          script: {
            type: 'bash',
            content: [
              `deep=$(python3 -c 'print("[" * 20000 + "]" * 20000)')`,
              'cronium.setVariable deep "$deep"',
              'cronium.output "$deep"',
              'cronium.setVariable fine \'{"a":1}\'',
              'cronium.setCondition true',
              'echo done',
            ].join('\n'),
          },
          targets: { serverIds: [serverId] },
        });
      const ex = await waitForExecution(t, res.body.id, 30000);
      expect(ex.status).toBe('succeeded');
      expect(ex.targets[0]).toMatchObject({ output: null, condition: true });
      const logs = await logsOf(t, ex.id);
      const said = logs
        .filter((l) => l.stream !== 'stdout')
        .map((l) => l.text)
        .join('\n');
      expect(said).toMatch(/nested deeper than 64 levels/);
      const get = (key: string) => t.http().get(`/v1/variables/deep-${mode}/${key}`).set(t.auth);
      expect((await get('fine')).body.value).toEqual({ a: 1 });
      expect((await get('deep')).status).toBe(404);
    },
  );

  it('fails toolAction in bundled mode with a clear message', async () => {
    const res = await t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .send({
        helperMode: 'bundled',
        script: {
          type: 'python',
          content:
            'try:\n    cronium.toolAction("slack", "send", {})\nexcept cronium.CroniumError as e:\n    print("error:", e)',
        },
        targets: { serverIds: [serverId] },
      });
    const ex = await waitForExecution(t, res.body.id);
    const out = (await logsOf(t, ex.id)).filter((l) => l.stream === 'stdout').map((l) => l.text);
    expect(out.join('\n')).toMatch(/toolAction needs API mode/);
  });
});
