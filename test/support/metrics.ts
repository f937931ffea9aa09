/**
 * One sample of a Prometheus text exposition: the series `name` whose labels are exactly
 * `labels` (as written in the exposition, e.g. `result="api",reason="none"`), apart from
 * `replica_id`, which every series carries. 0 when there is no such series.
 */
export function sample(text: string, name: string, labels = ''): number {
  return find(text, name, labels) ?? 0;
}

/** Whether the exposition has the series at all (at any value, 0 included). */
export function hasSeries(text: string, name: string, labels = ''): boolean {
  return find(text, name, labels) !== undefined;
}

/** Every sample line of the exposition as name, labels (replica_id included) and value. */
export function samples(
  text: string,
): { name: string; labels: Map<string, string>; value: number }[] {
  const out = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m) out.push({ name: m[1], labels: labelSet(m[2] ?? ''), value: Number(m[3]) });
  }
  return out;
}

function find(text: string, name: string, labels: string): number | undefined {
  const want = labelSet(labels);
  for (const s of samples(text)) {
    if (s.name !== name) continue;
    const have = new Map(s.labels);
    have.delete('replica_id');
    if (have.size === want.size && [...want].every(([k, v]) => have.get(k) === v)) {
      return s.value;
    }
  }
  return undefined;
}

function labelSet(labels: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of labels.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
    out.set(m[1], m[2]);
  }
  return out;
}
