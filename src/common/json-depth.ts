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
