export interface CaptureLimits {
  /** Bytes kept per stream; the rest is read and dropped. */
  capBytes: number;
  /** Longer lines are cut into entries of at most this many bytes. */
  maxLineBytes: number;
}

/**
 * Turns one raw byte stream into log entries: split on newlines (a 0x0A byte never
 * occurs inside a UTF-8 sequence), long lines cut at a character boundary, invalid UTF-8
 * replaced, NUL replaced (PostgreSQL text cannot hold it), and everything past the cap
 * dropped while still being consumed so the remote side never stalls.
 */
export class OutputCapture {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private kept = 0;
  truncated = false;

  constructor(
    private readonly limits: CaptureLimits,
    private readonly onLine: (text: string) => void,
    private readonly onTruncate: (keptBytes: number) => void,
  ) {}

  hasPending(): boolean {
    return this.pendingBytes > 0;
  }

  write(chunk: Buffer): void {
    if (this.truncated) return;
    let data = chunk;
    const room = this.limits.capBytes - this.kept;
    if (data.length > room) {
      data = data.subarray(0, room);
      this.truncated = true;
    }
    this.kept += data.length;
    let start = 0;
    while (start < data.length) {
      const nl = data.indexOf(0x0a, start);
      const end = nl === -1 ? data.length : nl;
      this.append(data.subarray(start, end));
      if (nl === -1) break;
      this.emitPending(true);
      start = nl + 1;
    }
    if (this.truncated) {
      this.flush();
      this.onTruncate(this.kept);
    }
  }

  /** Emits whatever partial line is pending (end of stream, or an idle flush). */
  flush(): void {
    if (this.pendingBytes) this.emitPending(false);
  }

  private append(piece: Buffer): void {
    let rest = piece;
    while (rest.length) {
      const room = this.limits.maxLineBytes - this.pendingBytes;
      if (rest.length <= room) {
        this.pending.push(rest);
        this.pendingBytes += rest.length;
        return;
      }
      let cut = room;
      // Back off continuation bytes (10xxxxxx) so no character is split.
      while (cut > 0 && (rest[cut] & 0xc0) === 0x80) cut--;
      if (cut === 0) cut = this.pendingBytes ? 0 : Math.min(room, rest.length) || 1;
      this.pending.push(rest.subarray(0, cut));
      this.pendingBytes += cut;
      this.emitPending(false);
      rest = rest.subarray(cut);
    }
  }

  private emitPending(endOfLine: boolean): void {
    let text = Buffer.concat(this.pending, this.pendingBytes).toString('utf8');
    this.pending = [];
    this.pendingBytes = 0;
    if (endOfLine && text.endsWith('\r')) text = text.slice(0, -1);
    this.onLine(text.includes('\0') ? text.replace(/\0/g, '\uFFFD') : text);
  }
}
