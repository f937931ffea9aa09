import { shellQuote } from '../runner/protocol';
import { autoValue, rawRender } from './variables.service';

/** Files the service writes into the run directory for bundled mode (docs/runtime-helpers.md). */
export function bundledFiles(
  context: unknown,
  input: unknown,
  variables: Record<string, unknown>,
): Record<string, string> {
  const entries = Object.entries(variables)
    .map(([k, v]) => `[${shellQuote(k)}]=${shellQuote(rawRender(v))}`)
    .join(' ');
  return {
    'context.json': JSON.stringify(context),
    'input.json': JSON.stringify(input ?? null),
    'variables.json': JSON.stringify(variables),
    // bash has no JSON parser: a sourceable snapshot with values rendered raw.
    'variables.sh':
      `CRONIUM_INPUT_RAW=${shellQuote(rawRender(input ?? null))}\n` +
      `declare -gA CRONIUM_VARS=(${entries})\n`,
  };
}

export interface BundledResults {
  output: { set: boolean; value: unknown };
  condition: boolean | null;
  /** In call order; later writes of a key win when applied in order. */
  variables: [string, unknown][];
}

function typed(val: Buffer, type: Buffer | undefined): unknown {
  const text = val.toString('utf8');
  if (type?.toString('utf8').trim() === 'json') return JSON.parse(text);
  return autoValue(text);
}

/** Reads the out/ files a script's helpers wrote, exactly as API mode would have applied them. */
export function readBundledResults(files: Map<string, Buffer>): BundledResults {
  const r: BundledResults = { output: { set: false, value: null }, condition: null, variables: [] };
  const outVal = files.get('output.val');
  if (outVal && files.has('output.type')) {
    r.output = { set: true, value: typed(outVal, files.get('output.type')) };
  }
  const cond = files.get('condition')?.toString('utf8').trim();
  if (cond === 'true' || cond === 'false') r.condition = cond === 'true';
  const ns = [...files.keys()]
    .map((k) => /^var\.(\d+)\.type$/.exec(k)?.[1])
    .filter((n): n is string => !!n)
    .map(Number)
    .sort((a, b) => a - b);
  for (const n of ns) {
    const key = files.get(`var.${n}.key`);
    const val = files.get(`var.${n}.val`);
    if (!key || !val) continue;
    r.variables.push([key.toString('utf8'), typed(val, files.get(`var.${n}.type`))]);
  }
  return r;
}
