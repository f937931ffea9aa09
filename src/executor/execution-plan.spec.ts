import { batchPlan } from './execution-plan';

describe('batch plan', () => {
  const batch = { size: 2, maxFailPercentage: 50, pauseSeconds: 5 };

  it('is null without a batch', () => {
    expect(batchPlan(null, [null, null])).toBeNull();
  });

  it('counts the targets of each batch; a new execution has no failures and no ends', () => {
    expect(batchPlan(batch, [1, 1, 2, 2, 3])).toEqual({
      maxFailPercentage: 50,
      pauseSeconds: 5,
      totals: [2, 2, 1],
      priorFailures: [0, 0, 0],
      endedAt: [null, null, null],
    });
  });

  it('after a take-over: the failures of each batch and when its last ended target ended', () => {
    const before = [
      { failed: true, finishedAt: 100 },
      { failed: false, finishedAt: 250 },
      { failed: true, finishedAt: 300 },
      { failed: false, finishedAt: null },
    ];
    expect(batchPlan(batch, [1, 1, 2, 2], before)).toMatchObject({
      totals: [2, 2],
      priorFailures: [1, 1],
      endedAt: [250, 300],
    });
  });
});
