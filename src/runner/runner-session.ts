import type { ClientChannel } from 'ssh2';
import type { PooledConnection } from '../ssh/ssh.types';
import {
  buildRunPayload,
  ControlWord,
  controlLine,
  EndReason,
  FIRST_LINE_MAX,
  isRunnerGone,
  isUnknownRun,
  looksLikeMissingRunner,
  mayBeTrailer,
  parseErrorLine,
  parseReadyLine,
  parseStandbyLine,
  parseTrailer,
  ReadyLine,
  RunPayloadInput,
} from './protocol';
import type { RunnerChannels } from './runner-channels';
import { signalFromShellStatus } from './signals';

/** Where one stream's bytes go once the script runs (an OutputCapture). */
export interface StreamSink {
  write(chunk: Buffer): void;
  /** Emits a pending partial line. */
  flush(): void;
  hasPending(): boolean;
}

/** How one conversation with a runner ended. */
export interface RunnerExit {
  /** The runner printed its ready (or attached) line: spooled output followed. */
  started: boolean;
  /** The trailer arrived: the script has ended and all its output was delivered. */
  ended: boolean;
  exitCode: number | null;
  signal: string | null;
  reason: EndReason | null;
  /** The channel or the connection went away after the start and before the trailer. */
  lost: boolean;
  /** The runner file was not there (the shell could not open it). */
  runnerMissing: boolean;
  /** `attach` found no such run (its directory or its supervisor is gone). */
  unknownRun: boolean;
  /** A `cancel` / `timeout` word got no trailer within the kill grace: the connection was dropped. */
  unconfirmed: boolean;
  /** Why the runner failed before following. */
  runnerError: string | null;
  /** Bundled mode: the helpers' results (a `collect` answer), when the trailer carried them. */
  collected: Buffer | null;
  /** From opening the channel to the trailer (or the loss). */
  durationMs: number;
}

export interface RunnerSessionOptions {
  killGraceSeconds: number;
  /** How often `hb` renews the runner's lease while attached. */
  heartbeatMs: number;
  stdout: StreamSink;
  stderr: StreamSink;
  onReady: (ready: ReadyLine) => void;
  /** What the login environment printed on stderr before the runner spoke. */
  onNoise: (text: string) => void;
  /** The next standby waits for this as well as for the channel's close (RunnerChannels). */
  refillAfter?: Promise<unknown>;
}

const IDLE_FLUSH_MS = 200;
const EMPTY = Buffer.alloc(0);
/**
 * How long past the kill grace a `cancel` / `timeout` word waits for the trailer before
 * the connection is dropped. The runner TERMs, KILLs after the grace and reports at once;
 * a host that says nothing by then is frozen, dead or cut off. Target-run holds the same
 * bound for the phases outside a session.
 */
export const HARD_STOP_MARGIN_MS = 1000;

/**
 * One conversation with a runner on one exec channel: start a run (or attach to one),
 * tell the ready line from what came before it (a `run` runner's standby word, whether
 * the standby already read it or it comes on this channel; login noise on stderr), stream the spooled stdout and stderr
 * into their sinks, keep the lease alive, pass control words on, and report how it
 * ended: the trailer (the script's exit code and why), a loss, or a runner that is
 * missing or failed. A session runs once; a re-attach is a new session.
 */
export class RunnerSession {
  private channel: ClientChannel | null = null;
  private word: 'cancel' | 'timeout' | null = null;
  private hardStop: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private idle: NodeJS.Timeout | null = null;
  /** Bumped on every chunk, so an idle flush can tell whether output is still coming. */
  private dataTick = 0;
  /** stdout before the first line, and stderr before it (the login shell's complaints). */
  private head = EMPTY;
  private earlyErr = EMPTY;
  /** stdout bytes held back because they may be the start of the trailer. */
  private held = EMPTY;
  /** Whether the next stdout byte starts a line (where a trailer can start). */
  private lineStart = true;
  private gotExit = false;
  private detached = false;
  private channelExitCode: number | null = null;
  private readonly exit: RunnerExit = {
    started: false,
    ended: false,
    exitCode: null,
    signal: null,
    reason: null,
    lost: false,
    runnerMissing: false,
    unknownRun: false,
    unconfirmed: false,
    runnerError: null,
    collected: null,
    durationMs: 0,
  };

  constructor(
    private readonly conn: PooledConnection,
    private readonly channels: RunnerChannels,
    private readonly opts: RunnerSessionOptions,
  ) {}

  /** Starts a new run (commands.ts `runCommand`) and follows it. */
  start(command: string, request: RunPayloadInput): Promise<RunnerExit> {
    return this.follow(command, buildRunPayload(request), true);
  }

  /** Follows a run that already exists (commands.ts `attachCommand`). */
  attach(command: string): Promise<RunnerExit> {
    return this.follow(command, null, false);
  }

  /** Asks the runner to kill the script's whole tree; remembered until the channel opens. */
  signal(word: 'cancel' | 'timeout'): void {
    if (this.word) return;
    this.word = word;
    this.sendWord();
  }

  /**
   * Stops following without a word to the runner: the run goes on under its lease, for
   * whoever attaches next (a hand-over). The session then ends as lost. A channel whose
   * close is not answered within HARD_STOP_MARGIN_MS (a frozen host) drops the connection,
   * so a hand-over never waits for the keepalive.
   */
  detach(): void {
    this.detached = true;
    const ch = this.channel;
    if (!ch) return;
    ch.close();
    const t = setTimeout(() => {
      if (this.channel === ch) this.conn.destroy('the host did not answer a hand-over');
    }, HARD_STOP_MARGIN_MS);
    t.unref();
    ch.once('close', () => clearTimeout(t));
  }

  private async follow(
    command: string,
    payload: Buffer | null,
    standby: boolean,
  ): Promise<RunnerExit> {
    const started = performance.now();
    const channel = await this.channels.open(this.conn, command, standby, this.opts.refillAfter);
    this.channel = channel;
    // a standby's login noise: as if it had just arrived (logged once, at the ready line);
    // the part of its standby word it had received, if the word was not complete yet
    const noise = this.channels.takeNoise(channel);
    if (noise) this.onStderr(noise);
    const early = this.channels.takeEarly(channel);
    if (early) this.onStdout(early);
    return new Promise<RunnerExit>((resolve) => {
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        offClose();
        this.settle(started);
        resolve(this.exit);
      };
      const offClose = this.conn.onClose(() => finish());
      channel.on('data', (chunk: Buffer) => this.onStdout(chunk));
      channel.stderr.on('data', (chunk: Buffer) => this.onStderr(chunk));
      // EOF: the follower has written everything it will write, the trailer last.
      channel.on('end', () => {
        if (this.takeTrailer()) {
          // After what the end sets off here (the outcome, the long-poll's answer): the
          // ack's write wakes sshd and the runner, which would take the CPU from them.
          setImmediate(() => sendOn(channel, 'ack'));
          finish();
        }
      });
      channel.on('exit', (code: number | null) => {
        this.gotExit = true;
        this.channelExitCode = code;
      });
      channel.on('close', finish);
      channel.on('error', () => undefined);
      if (this.detached) return channel.close();
      if (payload) channel.write(payload);
      if (this.word) this.sendWord();
    });
  }

  private send(word: ControlWord): void {
    if (this.channel) sendOn(this.channel, word);
  }

  private sendWord(): void {
    const ch = this.channel;
    if (!ch || !this.word) return;
    this.send(this.word);
    // A runner that cannot answer (host frozen) must not hold the target forever. Closing
    // the channel is not enough: a close waits for the peer's, which a frozen host never
    // sends. Dropping the connection ends this session (as lost) at once.
    this.hardStop ??= setTimeout(
      () => {
        this.exit.unconfirmed = true;
        this.conn.destroy(`the host did not confirm the ${this.word} within the kill grace`);
      },
      this.opts.killGraceSeconds * 1000 + HARD_STOP_MARGIN_MS,
    );
  }

  private onStdout(chunk: Buffer, arrived = true): void {
    if (arrived) this.dataTick++;
    if (this.exit.started) return this.onSpool(chunk);
    this.head = chunk.length ? Buffer.concat([this.head, chunk]) : this.head;
    const nl = this.head.indexOf(0x0a);
    if (nl === -1) {
      if (this.head.length > FIRST_LINE_MAX)
        this.exit.runnerError = 'unexpected output before the runner started';
      return;
    }
    const line = this.head.subarray(0, nl).toString('utf8');
    if (parseStandbyLine(line) !== null) {
      // a `run` runner's first line (on a fresh channel, or a standby taken before its
      // word arrived): not output, the ready line follows
      this.head = this.head.subarray(nl + 1);
      return this.onStdout(EMPTY, false);
    }
    const ready = parseReadyLine(line);
    if (!ready) return; // kept in `head` for diagnose()
    this.exit.started = true;
    // Following from the middle of a line (a drop cut it): no trailer starts there.
    this.lineStart = !this.opts.stdout.hasPending();
    this.opts.onReady(ready);
    if (this.earlyErr.length && this.channels.firstNoise(this.conn)) {
      this.opts.onNoise(this.earlyErr.toString('utf8').trim());
    }
    this.earlyErr = EMPTY;
    this.heartbeat = setInterval(() => this.send('hb'), this.opts.heartbeatMs);
    this.heartbeat.unref();
    const rest = this.head.subarray(nl + 1);
    this.head = EMPTY;
    if (rest.length) this.onSpool(rest);
  }

  /**
   * Script stdout, except what may be the trailer. Held back: the last line while it
   * could still grow into `CRONIUM2 exit …\n` (a complete one until EOF says it was the
   * last word), and a newline just before it only when that newline would start an
   * empty line (the follower's own, after output that ended in one). Every other byte
   * goes straight on, so a line is emitted the moment its newline arrives.
   */
  private onSpool(chunk: Buffer): void {
    const data = this.held.length ? Buffer.concat([this.held, chunk]) : chunk;
    const atLineStart = (i: number) => (i === 0 ? this.lineStart : data[i - 1] === 0x0a);
    const complete = data[data.length - 1] === 0x0a;
    // Where the last line starts: after the newline before it (the final byte, when
    // the line is complete, ends it and does not count).
    const nl = data.lastIndexOf(0x0a, complete ? data.length - 2 : data.length - 1);
    const start = nl + 1;
    let keepFrom = data.length;
    if ((nl !== -1 || this.lineStart) && start < data.length) {
      if (mayBeTrailer(data.subarray(start))) keepFrom = start;
    }
    if (keepFrom === start && nl !== -1 && atLineStart(nl)) keepFrom = nl;
    if (keepFrom === data.length && complete && atLineStart(data.length - 1)) {
      keepFrom = data.length - 1; // a lone newline at a line start: maybe the follower's
    }
    this.held = keepFrom === data.length ? EMPTY : Buffer.from(data.subarray(keepFrom));
    if (keepFrom > 0) {
      this.opts.stdout.write(data.subarray(0, keepFrom));
      this.lineStart = data[keepFrom - 1] === 0x0a;
    }
    this.scheduleIdleFlush();
  }

  /** At EOF: is what was held back the trailer? Otherwise it was the script's output. */
  private takeTrailer(): boolean {
    const trailer = this.exit.started ? parseTrailer(this.held) : null;
    if (!trailer) {
      this.releaseHeld();
      return false;
    }
    this.held = EMPTY;
    this.exit.ended = true;
    this.exit.exitCode = trailer.exitCode;
    this.exit.signal = signalFromShellStatus(trailer.exitCode);
    this.exit.reason = trailer.reason;
    this.exit.collected = trailer.collected;
    return true;
  }

  private releaseHeld(): void {
    if (!this.held.length) return;
    this.opts.stdout.write(this.held);
    this.held = EMPTY;
  }

  private onStderr(chunk: Buffer): void {
    this.dataTick++;
    if (this.exit.started) {
      this.opts.stderr.write(chunk);
      return this.scheduleIdleFlush();
    }
    if (this.earlyErr.length < FIRST_LINE_MAX)
      this.earlyErr = Buffer.concat([this.earlyErr, chunk]);
  }

  /** A partial line is emitted once output has been quiet for a moment. */
  private scheduleIdleFlush(): void {
    const { stdout, stderr } = this.opts;
    if (this.idle || (!stdout.hasPending() && !stderr.hasPending())) return;
    const armedAt = this.dataTick;
    this.idle = setTimeout(() => {
      // I/O callbacks run before setImmediate ones: output that arrived while the loop
      // was busy is consumed first, so a line is not cut just because we were late.
      setImmediate(() => {
        this.idle = null;
        if (this.dataTick !== armedAt) return this.scheduleIdleFlush();
        stdout.flush();
        stderr.flush();
      });
    }, IDLE_FLUSH_MS);
  }

  private settle(started: number): void {
    for (const t of [this.idle, this.hardStop]) if (t) clearTimeout(t);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.exit.durationMs = Math.round(performance.now() - started);
    if (!this.exit.started) {
      this.channel = null;
      return this.diagnose();
    }
    if (this.exit.ended) {
      this.opts.stdout.flush();
      this.opts.stderr.flush();
    } else {
      // Lost mid-follow. What was held back is resent after a re-attach (its offset was
      // never counted), and a pending partial line stays pending, so the re-attached
      // bytes continue it: lines are cut by offset, never by a dropped connection.
      this.held = EMPTY;
      this.exit.lost = true;
      this.channel?.close();
    }
    this.channel = null;
  }

  /** No first line: tell a vanished runner from one that failed. */
  private diagnose(): void {
    const stderr = this.earlyErr.toString('utf8').trim();
    const error = parseErrorLine(this.head.toString('utf8'));
    const code = this.gotExit ? this.channelExitCode : null;
    if (isRunnerGone(error)) this.exit.runnerMissing = true;
    else if (error !== null) {
      this.exit.runnerError = error;
      this.exit.unknownRun = isUnknownRun(error);
    } else if (looksLikeMissingRunner(code, stderr)) this.exit.runnerMissing = true;
    else if (!this.gotExit && this.conn.closed) this.exit.lost = true;
    else this.exit.runnerError ??= stderr.slice(0, 500) || `exit ${code}`;
  }
}

/** A control word on a channel that may be going away already. */
function sendOn(channel: ClientChannel, word: ControlWord): void {
  try {
    channel.write(controlLine(word));
  } catch {
    /* the channel is already going away */
  }
}
