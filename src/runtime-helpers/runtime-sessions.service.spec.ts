import { RuntimeSessionsService } from './runtime-sessions.service';

const ctx = {
  executionId: 'e1',
  jobId: 'j1',
  eventId: null,
  userId: 'u1',
  serverId: 's1',
  serverName: 'n',
  helperMode: 'api' as const,
};
const claims = {
  executionId: 'e1',
  jobId: 'j1',
  eventId: null,
  userId: 'u1',
  serverId: 's1',
  jti: 't1',
};

describe('RuntimeSessionsService', () => {
  it('honours a token only while its target is open and only with matching claims', () => {
    const s = new RuntimeSessionsService();
    expect(s.forClaims(claims)).toBeUndefined();
    s.open('t1', ctx, 'in', 10);
    expect(s.forClaims(claims)?.input).toBe('in');
    expect(s.forClaims({ ...claims, executionId: 'e2' })).toBeUndefined();
    expect(s.forClaims({ ...claims, serverId: 's2' })).toBeUndefined();
    expect(s.forClaims({ ...claims, userId: 'u2' })).toBeUndefined();
    expect(s.forClaims({ ...claims, jti: 't2' })).toBeUndefined();
    s.close('t1');
    expect(s.forClaims(claims)).toBeUndefined();
  });

  it('rate-limits with a token bucket per target', () => {
    const s = new RuntimeSessionsService();
    const session = s.open('t1', ctx, null, 3);
    expect([1, 2, 3, 4].map(() => s.take(session, 1, 3))).toEqual([true, true, true, false]);
    session.refilledAt -= 2000; // two seconds later at 1/s
    expect([1, 2, 3].map(() => s.take(session, 1, 3))).toEqual([true, true, false]);
  });
});
