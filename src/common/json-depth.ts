/**
 * True when `value` nests arrays and objects deeper than `max` (a scalar is depth 0,
 * `[]` depth 1). Iterative, so a value nested 100,000 deep cannot overflow the stack
 * here, as it would in class-transformer, JSON.stringify or the database layer.
 */
export function deeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth + 1 > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return false;
}

export const tooDeepMessage = (what: string, max: number) =>
  `${what} is nested deeper than ${max} levels`;

/** The 400 for a lone surrogate found at `at` (loneSurrogateAt). */
export const loneSurrogateMessage = (at: string) =>
  `${at}: holds a lone UTF-16 surrogate (not a character)`;

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * The path of the first string (or object key) in `value` holding a lone UTF-16
 * surrogate (`"\ud800"` in JSON), which no UTF-8 store can keep; null when there is none.
 */
export function loneSurrogateAt(value: unknown): string | null {
  const stack: [unknown, string][] = [[value, '']];
  while (stack.length) {
    const [v, at] = stack.pop()!;
    if (typeof v === 'string') {
      if (LONE_SURROGATE.test(v)) return at || '(the body)';
    } else if (v !== null && typeof v === 'object') {
      for (const [k, child] of Object.entries(v)) {
        const path = Array.isArray(v) ? `${at}[${k}]` : at ? `${at}.${k}` : k;
        if (LONE_SURROGATE.test(k)) return path;
        stack.push([child, path]);
      }
    }
  }
  return null;
}
