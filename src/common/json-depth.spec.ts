import { deeperThan, loneSurrogateAt } from './json-depth';

const nested = (n: number): unknown => {
  let v: unknown = 1;
  for (let i = 0; i < n; i++) v = i % 2 ? { k: v } : [v];
  return v;
};

describe('deeperThan', () => {
  it('counts arrays and objects, not scalars', () => {
    expect(deeperThan(1, 0)).toBe(false);
    expect(deeperThan('x', 0)).toBe(false);
    expect(deeperThan(null, 0)).toBe(false);
    expect(deeperThan([], 0)).toBe(true);
    expect(deeperThan([], 1)).toBe(false);
    expect(deeperThan({ a: [1, { b: 2 }] }, 3)).toBe(false);
    expect(deeperThan({ a: [1, { b: 2 }] }, 2)).toBe(true);
  });

  it('is exact at the limit, on any branch', () => {
    expect(deeperThan(nested(64), 64)).toBe(false);
    expect(deeperThan(nested(65), 64)).toBe(true);
    expect(deeperThan([1, [2], { a: nested(64) }], 66)).toBe(false);
    expect(deeperThan([1, [2], { a: nested(64) }], 65)).toBe(true);
  });

  it('walks 200,000 levels without overflowing the stack', () => {
    const deep = JSON.parse('['.repeat(200_000) + ']'.repeat(200_000));
    expect(deeperThan(deep, 64)).toBe(true);
    expect(deeperThan(deep, 1_000_000)).toBe(false);
  });
});

describe('loneSurrogateAt', () => {
  it('finds a lone surrogate in any string or key, and names where', () => {
    expect(loneSurrogateAt({ a: 'ok', b: ['fine', { c: 'x\ud800' }] })).toBe('b[1].c');
    expect(loneSurrogateAt({ ['\udc00']: 1 })).toBe('\udc00');
    expect(loneSurrogateAt('\udbff')).toBe('(the body)');
  });

  it('lets pairs and everything else through', () => {
    expect(loneSurrogateAt({ emoji: '😀', n: 1, z: null, list: ['a', 'é'] })).toBeNull();
  });
});
