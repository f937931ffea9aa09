import { shellQuote } from '../runner-cache/remote-commands';
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

/** Splits the runner's `collect` answer into its files. */
export function parseCollected(out: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  let pos = out.indexOf(0x0a);
  const header = out.subarray(0, pos).toString('utf8');
  const m = /^CRONIUM1 collect (\d+)$/.exec(header);
  if (!m) throw new Error(`unexpected collect answer: ${header.slice(0, 80)}`);
  for (let i = 0; i < Number(m[1]); i++) {
    const nl = out.indexOf(0x0a, pos + 1);
    const [name, len] = out
      .subarray(pos + 1, nl)
      .toString('utf8')
      .split(' ');
    const n = Number(len);
    files.set(name, out.subarray(nl + 1, nl + 1 + n));
    pos = nl + n;
  }
  return files;
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
