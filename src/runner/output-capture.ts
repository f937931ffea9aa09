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
 *
 * Every entry carries the stream's byte offset just past its last byte (its newline
 * included), so a follower that re-attaches after a drop or a restart resumes exactly
 * after the last entry it has, cutting lines by offset rather than by chunk.
 */
export class OutputCapture {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private kept = 0;
  /** Offset of the next byte of the stream (every byte counts, dropped ones too). */
  private offset: number;
  /** A partial line went out on a flush: the newline that ends it adds no empty entry. */
  private flushedPartial = false;
  truncated = false;

  constructor(
    private readonly limits: CaptureLimits,
    private readonly onLine: (text: string, endOffset: number) => void,
    private readonly onTruncate: (keptBytes: number) => void,
    startOffset = 0,
  ) {
    this.offset = startOffset;
  }

  /** The offset of the next byte; a re-attach resumes from the last emitted entry's end. */
  get position(): number {
    return this.offset;
  }

  hasPending(): boolean {
    return this.pendingBytes > 0;
  }

  write(chunk: Buffer): void {
    const base = this.offset;
    this.offset += chunk.length;
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
      this.append(data.subarray(start, end), base + start);
      if (nl === -1) break;
      if (this.flushedPartial && !this.pendingBytes) this.flushedPartial = false;
      else this.emitPending(true, base + nl + 1);
      start = nl + 1;
    }
    if (this.truncated) {
      this.flush();
      this.onTruncate(this.kept);
    }
  }

  /** Emits whatever partial line is pending (end of stream, or an idle flush). */
  flush(): void {
    if (!this.pendingBytes) return;
    this.emitPending(false, this.pendingEnd);
    this.flushedPartial = true;
  }

  /** Offset just past the last pending byte. */
  private pendingEnd = 0;

  private append(piece: Buffer, at: number): void {
    let rest = piece;
    let pos = at;
    while (rest.length) {
      const room = this.limits.maxLineBytes - this.pendingBytes;
      if (rest.length <= room) {
        this.pending.push(rest);
        this.pendingBytes += rest.length;
        this.pendingEnd = pos + rest.length;
        return;
      }
      let cut = room;
      // Back off continuation bytes (10xxxxxx) so no character is split.
      while (cut > 0 && (rest[cut] & 0xc0) === 0x80) cut--;
      if (cut === 0) cut = this.pendingBytes ? 0 : Math.min(room, rest.length) || 1;
      this.pending.push(rest.subarray(0, cut));
      this.pendingBytes += cut;
      this.emitPending(false, pos + cut);
      rest = rest.subarray(cut);
      pos += cut;
    }
  }

  private emitPending(endOfLine: boolean, endOffset: number): void {
    this.flushedPartial = false;
    let text = Buffer.concat(this.pending, this.pendingBytes).toString('utf8');
    this.pending = [];
    this.pendingBytes = 0;
    if (endOfLine && text.endsWith('\r')) text = text.slice(0, -1);
    this.onLine(text.includes('\0') ? text.replace(/\0/g, '\uFFFD') : text, endOffset);
  }
}
