/**
 * `npm run demo`: starts a real sshd on loopback, starts the service on SQLite, registers
 * the sshd as a server, runs a small bash job and prints its status, logs and result.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort, startSshd } from '../test/support/sshd';

// compiled to .tmp/scripts/scripts/demo.js
const root = path.resolve(__dirname, '../../..');

async function main(): Promise<void> {
  const sshd = await startSshd();
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cronium-demo-'));
  const token = 'demo-' + Math.random().toString(36).slice(2).padEnd(20, 'x');
  const service = spawn(process.execPath, [path.join(root, 'dist/main.js')], {
    env: {
      ...process.env,
      PORT: String(port),
      CRONIUM_DATA_DIR: dataDir,
      CRONIUM_SERVICE_TOKENS: token,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  service.once('exit', (code) => {
    if (code !== null && code !== 0) {
      console.error(`service exited with ${code}`);
      process.exit(1);
    }
  });
  const base = `http://127.0.0.1:${port}`;
  const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
  const api = async (method: string, url: string, body?: unknown) => {
    const res = await fetch(base + url, {
      method,
      headers,
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return {
      status: res.status,
      body: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text,
    };
  };
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${base}/health/ready`)).ok) break;
      } catch {
        /* not up yet */
      }
      if (i > 200) throw new Error('service did not become ready');
      await new Promise((r) => setTimeout(r, 100));
    }
    console.log(`service on ${base}, sshd on 127.0.0.1:${sshd.port}\n`);
    const server = await api('POST', '/v1/servers', {
      name: 'demo-server',
      host: '127.0.0.1',
      port: sshd.port,
      username: sshd.username,
      privateKey: sshd.key.privateKey,
      hostKey: sshd.hostPublicKey,
      baseDir: `${sshd.dir}/cronium`,
      tags: ['demo'],
    });
    console.log('POST /v1/servers →', server.status, JSON.stringify(server.body), '\n');
    const job = await api('POST', '/v1/jobs', {
      name: 'hello',
      script: {
        type: 'bash',
        content:
          'echo "hello from $(hostname) as $(id -un)"\necho "a warning" >&2\nuname -sm\nexit 0\n',
      },
      targets: { tags: ['demo'] },
    });
    console.log('POST /v1/jobs →', job.status, `execution ${job.body.id}\n`);
    let ex;
    for (;;) {
      ex = await api('GET', `/v1/executions/${job.body.id}`);
      if (['succeeded', 'failed', 'partial', 'cancelled'].includes(ex.body.status)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const logs = await api('GET', `/v1/executions/${job.body.id}/logs?format=text`);
    console.log('logs:\n' + logs.body);
    console.log('result:', JSON.stringify(ex.body, null, 2));
    const again = await api('POST', '/v1/jobs', {
      script: { type: 'bash', content: 'echo warm' },
      targets: { tags: ['demo'] },
    });
    const t0 = Date.now();
    for (;;) {
      ex = await api('GET', `/v1/executions/${again.body.id}`);
      if (ex.body.status !== 'queued' && ex.body.status !== 'running') break;
      await new Promise((r) => setTimeout(r, 2));
    }
    console.log(
      `\nsecond (warm) job: ${ex.body.status} in ~${Date.now() - t0} ms, phases ${JSON.stringify(ex.body.targets[0].phases)}`,
    );
    process.exitCode = ex.body.status === 'succeeded' ? 0 : 1;
  } finally {
    service.kill('SIGTERM');
    await new Promise((r) => service.once('exit', r));
    await sshd.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
