import { isUuid } from '../common/uuid';
import { newExecution, newTarget } from './execution-factory';
import type { ExecutionRequestSummary } from './request';

const request: ExecutionRequestSummary = {
  scriptType: 'bash',
  scriptBytes: 9,
  envNames: ['A'],
  timeoutSeconds: 60,
  helperMode: 'auto',
  concurrency: 5,
  maxErrors: null,
  failFast: false,
  targets: { tags: ['web'] },
};

describe('execution factory', () => {
  it('makes a queued execution with a fresh id and nulls for what the request left out', () => {
    const before = Date.now();
    const e = newExecution({ request });
    expect(isUuid(e.id)).toBe(true);
    expect(e).toEqual({
      id: e.id,
      name: null,
      jobId: null,
      eventId: null,
      userId: null,
      status: 'queued',
      idempotencyKey: null,
      request,
      createdAt: e.createdAt,
      startedAt: null,
      finishedAt: null,
      ownerId: null,
      heartbeatAt: null,
      cancelRequestedAt: null,
      requestHash: null,
      rerunOf: null,
      reason: null,
    });
    expect(e.createdAt).toBeGreaterThanOrEqual(before);
    expect(e.createdAt).toBeLessThanOrEqual(Date.now());
    expect(newExecution({ request }).id).not.toBe(e.id);
  });

  it('keeps the labels, the idempotency key and the time it is given', () => {
    const given = {
      name: 'n',
      jobId: 'j',
      eventId: 'ev',
      userId: 'u',
      idempotencyKey: 'k',
      createdAt: 1_763_800_000_000,
    };
    expect(newExecution({ ...given, request })).toMatchObject({ ...given, status: 'queued' });
  });

  it('an owned execution starts with its owner heartbeat at its creation time', () => {
    const e = newExecution({ request, ownerId: 'replica-a', createdAt: 1_763_800_000_000 });
    expect(e).toMatchObject({ ownerId: 'replica-a', heartbeatAt: 1_763_800_000_000 });
  });

  it('makes a queued target for a server, with no result and no phase timed', () => {
    const t = newTarget('exec-1', 3, { id: 'srv-1', name: 'web-1' });
    expect(isUuid(t.id)).toBe(true);
    expect(t).toMatchObject({
      executionId: 'exec-1',
      position: 3,
      serverId: 'srv-1',
      serverName: 'web-1',
      status: 'queued',
      truncated: false,
    });
    const results = ['exitCode', 'signal', 'errorCode', 'errorMessage', 'output', 'condition'];
    const helpers = ['helperMode', 'fallbackReason'];
    for (const field of [
      ...results,
      ...helpers,
      'startedAt',
      'finishedAt',
      'replicaId',
      'tunnelPort',
      'tunnelSocket',
      'batch',
    ]) {
      expect(t[field as keyof typeof t]).toBeNull();
    }
    expect(Object.values(t.phases)).toEqual([null, null, null, null]);
    expect(Object.keys(t)).toHaveLength(22);
    expect(newTarget('exec-1', 3, { id: 'srv-1', name: 'web-1' }, 2).batch).toBe(2);
    expect(newTarget('exec-1', 3, { id: 'srv-1', name: 'web-1' }).id).not.toBe(t.id);
  });
});
