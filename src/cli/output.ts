/** Terminal output of the CLI: colours (TTY only, NO_COLOR honoured), tables, durations. */

const PALETTE = [36, 33, 35, 32, 34, 91, 96, 93, 95, 92, 94]; // cyan, yellow, magenta, …

/** Colour on a stream: only a TTY, never with NO_COLOR set (https://no-color.org). */
export function colourOn(stream: NodeJS.WriteStream, disabled = false): boolean {
  return !disabled && !!stream.isTTY && !process.env.NO_COLOR;
}

export const paint = (on: boolean, code: number, text: string) =>
  on ? `\x1b[${code}m${text}\x1b[0m` : text;

/** The colour of the i-th server of an execution. */
export const serverColour = (i: number) => PALETTE[i % PALETTE.length];

export const STATUS_COLOUR: Record<string, number> = {
  succeeded: 32,
  failed: 31,
  partial: 33,
  timed_out: 31,
  cancelled: 33,
  skipped: 90,
  running: 36,
  queued: 90,
};

export function formatDuration(ms: number | null | undefined): string {
  if (ms == null) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const m = Math.floor(ms / 60_000);
  return `${m}m${String(Math.round((ms % 60_000) / 1000)).padStart(2, '0')}s`;
}

const visibleLength = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '').length;

/** A plain table: a header row and left-aligned columns, two spaces apart. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => visibleLength(r[i]))));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat(widths[i] - visibleLength(c))))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}
