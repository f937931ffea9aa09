import { executionStatus, summarize } from './aggregate';

describe('aggregation', () => {
  it('counts every final status', () => {
    expect(
      summarize(['succeeded', 'failed', 'timed_out', 'cancelled', 'skipped', 'succeeded']),
    ).toEqual({
      total: 6,
      succeeded: 2,
      failed: 1,
      timedOut: 1,
      cancelled: 1,
      skipped: 1,
    });
  });

  it('is succeeded only when all succeeded, failed when none did, partial otherwise', () => {
    expect(executionStatus(summarize(['succeeded', 'succeeded']), false)).toBe('succeeded');
    expect(executionStatus(summarize(['failed', 'timed_out', 'skipped']), false)).toBe('failed');
    expect(executionStatus(summarize(['succeeded', 'failed']), false)).toBe('partial');
    expect(executionStatus(summarize(['succeeded', 'skipped']), false)).toBe('partial');
  });

  it('reports a caller cancel as cancelled whatever the targets did', () => {
    expect(executionStatus(summarize(['succeeded', 'cancelled']), true)).toBe('cancelled');
  });
});
