import { shellQuote } from '../runner/protocol';
import { isUtf8 } from 'node:buffer';
import { deeperThan, loneSurrogateAt, tooDeepMessage } from '../common/json-depth';
import { autoValue, rawRender, validKey } from './variables.service';

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
  /** Records refused (unparsable, or nested deeper than allowed), with why; the rest apply. */
  refused: string[];
}

class Refused extends Error {}

/** The text of a result file; bytes that are not UTF-8 are refused, as API mode does. */
function utf8(buf: Buffer): string {
  if (!isUtf8(buf)) throw new Refused('not valid UTF-8');
  return buf.toString('utf8');
}

function typed(val: Buffer, type: Buffer | undefined, maxDepth: number): unknown {
  const text = utf8(val);
  let value: unknown;
  try {
    value = type?.toString('utf8').trim() === 'json' ? JSON.parse(text) : autoValue(text);
  } catch {
    throw new Refused('not valid JSON');
  }
  if (deeperThan(value, maxDepth)) throw new Refused(tooDeepMessage('the value', maxDepth));
  const bad = loneSurrogateAt(value);
  if (bad) {
    const at = bad === '(the body)' ? '' : ` at ${bad}`;
    throw new Refused(`the value${at} holds a lone UTF-16 surrogate (not a character)`);
  }
  return value;
}

/**
 * Reads the out/ files a script's helpers wrote, exactly as API mode would have applied
 * them. A record that cannot be taken is refused alone; the others are kept.
 */
export function readBundledResults(files: Map<string, Buffer>, maxDepth: number): BundledResults {
  const r: BundledResults = {
    output: { set: false, value: null },
    condition: null,
    variables: [],
    refused: [],
  };
  const outVal = files.get('output.val');
  if (outVal && files.has('output.type')) {
    try {
      r.output = { set: true, value: typed(outVal, files.get('output.type'), maxDepth) };
    } catch (e) {
      if (!(e instanceof Refused)) throw e;
      r.refused.push(`output: ${e.message}`);
    }
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
    try {
      const name = utf8(key);
      // The same keys as API mode: 1-200 UTF-8 bytes, no control characters.
      if (!validKey(name))
        throw new Refused('the key must be 1-200 bytes without control characters');
      r.variables.push([name, typed(val, files.get(`var.${n}.type`), maxDepth)]);
    } catch (e) {
      if (!(e instanceof Refused)) throw e;
      r.refused.push(
        `setVariable ${JSON.stringify(key.toString('utf8').slice(0, 100))}: ${e.message}`,
      );
    }
  }
  return r;
}
