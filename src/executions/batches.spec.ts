import { batchHalt, batchNumbers, resolveBatchSize } from './batches';

describe('rolling batches', () => {
  it('a count is the size; "N%" is N% of the targets rounded up, at least 1', () => {
    expect(resolveBatchSize(3, 10)).toBe(3);
    expect(resolveBatchSize('25%', 10)).toBe(3);
    expect(resolveBatchSize('10%', 10)).toBe(1);
    expect(resolveBatchSize('1%', 3)).toBe(1);
    expect(resolveBatchSize('100%', 7)).toBe(7);
  });

  it('numbers the batches from 1 in target order; none without a batch', () => {
    expect(batchNumbers({ size: 2, maxFailPercentage: null, pauseSeconds: 0 }, 5)).toEqual([
      1, 1, 2, 2, 3,
    ]);
    expect(batchNumbers({ size: '50%', maxFailPercentage: null, pauseSeconds: 0 }, 3)).toEqual([
      1, 1, 2,
    ]);
    expect(batchNumbers(null, 2)).toEqual([null, null]);
  });

  it('halts only above the limit, naming the batch and the percentage', () => {
    expect(batchHalt(1, 1, 2, 50)).toBeNull();
    expect(batchHalt(1, 1, 2, null)).toBeNull();
    expect(batchHalt(2, 0, 3, 0)).toBeNull();
    expect(batchHalt(2, 2, 3, 50)).toBe(
      'batch 2: 2 of 3 targets failed (66.7%), more than maxFailPercentage 50%; ' +
        'the targets of later batches were skipped',
    );
    expect(batchHalt(1, 1, 4, 0)).toMatch(/^batch 1: 1 of 4 targets failed \(25%\)/);
  });
});
