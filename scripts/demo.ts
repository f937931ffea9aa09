/**
 * `npm run demo`: starts a real sshd on loopback, starts the service on SQLite, registers
 * the sshd as a server, runs a small bash job and prints its status, logs and result.
 */
import { startServiceProcess } from '../test/support/service-process';
import { startSshd } from '../test/support/sshd';

async function main(): Promise<void> {
  const sshd = await startSshd();
  const service = await startServiceProcess();
  void service.exited.then((code) => {
    if (code !== null && code !== 0) {
      console.error(`service exited with ${code}`);
      process.exit(1);
    }
  });
  const { api, base } = service;
  try {
    await service.waitReady();
    console.log(`service on ${base}, sshd on 127.0.0.1:${sshd.port}\n`);
    const server = await service.registerServer(sshd, {
      name: 'demo-server',
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
    let ex = await service.waitForExecution(job.body.id, { pollMs: 50 });
    const logs = await api('GET', `/v1/executions/${job.body.id}/logs?format=text`);
    console.log('logs:\n' + logs.body);
    console.log('result:', JSON.stringify(ex, null, 2));
    const again = await api('POST', '/v1/jobs', {
      script: { type: 'bash', content: 'echo warm' },
      targets: { tags: ['demo'] },
    });
    const t0 = Date.now();
    ex = await service.waitForExecution(again.body.id, { pollMs: 2 });
    console.log(
      `\nsecond (warm) job: ${ex.status} in ~${Date.now() - t0} ms, phases ${JSON.stringify(ex.targets[0].phases)}`,
    );
    process.exitCode = ex.status === 'succeeded' ? 0 : 1;
  } finally {
    await service.stop();
    await sshd.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
