/*
 * Example requests and responses for the OpenAPI document. The linters check each one
 * against its schema (redocly's no-invalid-media-type-examples, spectral's
 * oas3-valid-media-example), so they cannot drift from the types.
 */

const SERVER_ID = '4c1a9f0e-7b2d-4e8a-9c3f-1d2e3f4a5b6c';
const EXECUTION_ID = '9b2e7c1a-55f0-4a57-9d0e-2f1f3c1b8a10';
const AT = '2025-01-31T10:00:00.000Z';
const LATER = '2025-01-31T10:00:01.412Z';

export const createServerExample = {
  name: 'web-1',
  host: 'web-1.internal',
  port: 22,
  username: 'deploy',
  // A placeholder, not key material (nor armour a secret scanner would flag): real keys
  // are the caller's, and the tests generate theirs at run time.
  privateKey: '<the text of the OpenSSH private key file, e.g. ~/.ssh/id_ed25519>',
  tags: ['web', 'eu-west'],
};

export const updateServerExample = { tags: ['web', 'eu-west', 'canary'], baseDir: null };

export const serverExample = {
  id: SERVER_ID,
  name: 'web-1',
  host: 'web-1.internal',
  port: 22,
  username: 'deploy',
  authType: 'key',
  hasBecomePassword: false,
  hostKeyFingerprint: 'SHA256:0uI4Uv6strT1qUsl1DywImZFjFaGpRa8fAtRVebs2IU',
  hostKeyType: 'ssh-ed25519',
  hostKeyPinnedAt: AT,
  hostKeySource: 'tofu',
  tags: ['web', 'eu-west'],
  baseDir: null,
  jumpServerId: null,
  createdAt: AT,
  updatedAt: AT,
};

export const serverCheckExample = {
  ok: true,
  fingerprint: 'SHA256:0uI4Uv6strT1qUsl1DywImZFjFaGpRa8fAtRVebs2IU',
  hostKeyType: 'ssh-ed25519',
  pinned: true,
  connectMs: 38,
  latencyMs: 4,
};

export const createJobExample = {
  name: 'uptime',
  script: { type: 'bash', content: 'uptime' },
  targets: { tags: ['web'] },
  timeoutSeconds: 60,
};

export const rerunExample = { only: 'failed' };

const target = {
  serverId: SERVER_ID,
  serverName: 'web-1',
  status: 'queued',
  exitCode: null,
  signal: null,
  helperMode: null,
  output: null,
  condition: null,
  truncated: false,
  startedAt: null,
  finishedAt: null,
  durationMs: null,
  phases: { connectMs: null, deployMs: null, tunnelMs: null, runMs: null },
  replicaId: null,
};

const summary = { total: 1, succeeded: 0, failed: 0, timedOut: 0, cancelled: 0, skipped: 0 };

export const queuedExecutionExample = {
  id: EXECUTION_ID,
  name: 'uptime',
  jobId: null,
  eventId: null,
  userId: null,
  rerunOf: null,
  status: 'queued',
  createdAt: AT,
  startedAt: null,
  finishedAt: null,
  summary,
  targets: [target],
};

export const finishedExecutionExample = {
  ...queuedExecutionExample,
  status: 'succeeded',
  startedAt: AT,
  finishedAt: LATER,
  summary: { ...summary, succeeded: 1 },
  targets: [
    {
      ...target,
      status: 'succeeded',
      exitCode: 0,
      helperMode: 'api',
      startedAt: AT,
      finishedAt: LATER,
      durationMs: 1412,
      phases: { connectMs: 38, deployMs: 0, tunnelMs: 5, runMs: 1369 },
      replicaId: 'orchestrator-1-4242',
    },
  ],
};

export const executionPageExample = { items: [finishedExecutionExample], nextCursor: null };

export const logPageExample = {
  entries: [
    { seq: 1, serverId: SERVER_ID, stream: 'stdout', ts: LATER, text: ' 10:00:01 up 3 days' },
  ],
  nextSeq: 1,
};

export const logTextExample = '[web-1]  10:00:01 up 3 days\n';

export const notificationsExample = {
  executionId: EXECUTION_ID,
  items: [
    {
      deliveryId: '0d6f1b2c-3a4e-4f5a-8b9c-0d1e2f3a4b5c',
      url: 'https://hooks.example.com/cronium',
      signed: true,
      status: 'delivered',
      nextAttemptAt: null,
      attempts: [{ attempt: 1, at: LATER, httpStatus: 200, error: null, durationMs: 87 }],
    },
  ],
};

export const putVariableExample = { value: { lastDeploy: '2025-01-31', build: 412 } };

export const variableExample = { userId: 'default', key: 'release', ...putVariableExample };
