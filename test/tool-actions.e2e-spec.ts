import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import { logsOf, registerServer, startApp, TestApp, waitForExecution } from './support/app';
import { SshdInstance, startSshd } from './support/sshd';

/** Stands in for the platform's tool-action endpoint, which lives outside this machine. */
function platform(): Promise<{
  url: string;
  calls: { path: string; body: any }[];
  close: () => void;
}> {
  const calls: { path: string; body: any }[] = [];
  const server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      const body = JSON.parse(data);
      calls.push({ path: req.url ?? '', body });
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ done: `${body.tool}.${body.action}`, echo: body.params }));
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        calls,
        close: () => server.close(),
      }),
    ),
  );
}

describe('tool actions (real sshd, api mode)', () => {
  let sshd: SshdInstance;
  let t: TestApp;
  let bare: TestApp;
  let p: Awaited<ReturnType<typeof platform>>;
  let serverId: string;
  let bareServerId: string;

  beforeAll(async () => {
    sshd = await startSshd();
    p = await platform();
    t = await startApp({
      CRONIUM__TOOL_ACTIONS__ENDPOINT: `${p.url}/tool-actions`,
      CRONIUM__TOOL_ACTIONS__WEBHOOKS: JSON.stringify({ slack: `${p.url}/hooks/slack` }),
    });
    bare = await startApp();
    serverId = await registerServer(t, sshd, { baseDir: `${sshd.dir}/a` });
    bareServerId = await registerServer(bare, sshd, { baseDir: `${sshd.dir}/b` });
  });
  afterAll(async () => {
    await t?.close();
    await bare?.close();
    p?.close();
    await sshd?.stop();
  });

  const script = `
import json
print(json.dumps(cronium.toolAction("jira", "create", {"title": "it's ✓"})))
print(json.dumps(cronium.tool_action("slack", "send", {"text": "hi"})))
`;

  it('forwards to the platform endpoint or an allow-listed webhook, with the execution claims', async () => {
    const res = await t
      .http()
      .post('/v1/jobs')
      .set(t.auth)
      .send({
        helperMode: 'api',
        userId: 'tina',
        jobId: 'j-1',
        script: { type: 'python', content: script },
        targets: { serverIds: [serverId] },
      });
    const ex = await waitForExecution(t, res.body.id);
    expect(ex.status).toBe('succeeded');
    const out = (await logsOf(t, ex.id))
      .filter((l) => l.stream === 'stdout')
      .map((l) => JSON.parse(l.text));
    expect(out).toEqual([
      { done: 'jira.create', echo: { title: "it's ✓" } },
      { done: 'slack.send', echo: { text: 'hi' } },
    ]);
    expect(p.calls.map((c) => c.path)).toEqual(['/tool-actions', '/hooks/slack']);
    expect(p.calls[0].body.context).toMatchObject({
      executionId: ex.id,
      jobId: 'j-1',
      userId: 'tina',
      serverId,
    });
    expect(JSON.stringify(p.calls)).not.toMatch(/eyJ/); // no token leaves with the call
  });

  it('refuses tool actions that are not configured with a clear 4xx', async () => {
    const res = await bare
      .http()
      .post('/v1/jobs')
      .set(bare.auth)
      .send({
        helperMode: 'api',
        script: {
          type: 'python',
          content:
            'try:\n    cronium.toolAction("jira", "create", {})\nexcept cronium.CroniumError as e:\n    print("status", e.status, str(e))',
        },
        targets: { serverIds: [bareServerId] },
      });
    const ex = await waitForExecution(bare, res.body.id);
    const line = (await logsOf(bare, ex.id)).find((l) => l.stream === 'stdout');
    expect(line.text).toMatch(/^status 400 .*not configured/);
  });
});
