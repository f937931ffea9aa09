/**
 * One sample of a Prometheus text exposition: the series `name` whose labels are exactly
 * `labels` (as written in the exposition, e.g. `status="failed",reason=""`), apart from
 * `replica_id`, which every series carries. 0 when there is no such series.
 */
export function sample(text: string, name: string, labels = ''): number {
  const want = labelSet(labels);
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = labelSet(m[2] ?? '');
    have.delete('replica_id');
    if (have.size === want.size && [...want].every(([k, v]) => have.get(k) === v)) {
      return Number(m[3]);
    }
  }
  return 0;
}

function labelSet(labels: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of labels.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
    out.set(m[1], m[2]);
  }
  return out;
}
