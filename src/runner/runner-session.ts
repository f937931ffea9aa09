import type { ClientChannel } from 'ssh2';
import type { PooledConnection } from '../ssh/ssh.types';
import {
  buildRunPayload,
  ControlWord,
  controlLine,
  FIRST_LINE_MAX,
  looksLikeMissingRunner,
  parseErrorLine,
  parseReadyLine,
  ReadyLine,
  RunPayloadInput,
} from './protocol';
import type { RunnerChannels } from './runner-channels';
import { normalizeSignal, signalFromShellStatus } from './signals';

/** Where one stream's bytes go once the script runs (an OutputCapture). */
export interface StreamSink {
  write(chunk: Buffer): void;
  /** Emits a pending partial line. */
  flush(): void;
  hasPending(): boolean;
}

/** How one conversation with a runner ended. */
export interface RunnerExit {
  /** The runner printed its ready line, so the script started. */
  started: boolean;
  exitCode: number | null;
  signal: string | null;
  /** The connection dropped before the channel reported an exit status. */
  lost: boolean;
  /** The runner file was not there (the shell could not open it). */
  runnerMissing: boolean;
  /** Why the runner failed before the script started. */
  runnerError: string | null;
  /** From sending the payload to the channel's close. */
  durationMs: number;
}

export interface RunnerSessionOptions {
  /** The runner's command line (commands.ts `runCommand`). */
  command: string;
  killGraceSeconds: number;
  stdout: StreamSink;
  stderr: StreamSink;
  onReady: (ready: ReadyLine) => void;
}

const IDLE_FLUSH_MS = 200;
/** How long past the kill grace we wait for the runner before dropping the channel. */
const HARD_STOP_MARGIN_MS = 5000;

/**
 * One conversation with a runner on one exec channel: send the payload, tell the ready
 * line from what came before it, stream stdout and stderr into their sinks, pass control
 * words on, and report how it ended (exit status, connection lost, runner missing or
 * failed). A session runs once.
 */
export class RunnerSession {
  private channel: ClientChannel | null = null;
  private word: ControlWord | null = null;
  private hardStop: NodeJS.Timeout | null = null;
  private idle: NodeJS.Timeout | null = null;
  /** Bumped on every chunk, so an idle flush can tell whether output is still coming. */
  private dataTick = 0;
  /** stdout before the ready line, and stderr before it (the login shell's complaints). */
  private head = Buffer.alloc(0);
  private earlyErr = Buffer.alloc(0);
  private gotExit = false;
  private readonly exit: RunnerExit = {
    started: false,
    exitCode: null,
    signal: null,
    lost: false,
    runnerMissing: false,
    runnerError: null,
    durationMs: 0,
  };

  constructor(
    private readonly conn: PooledConnection,
    private readonly channels: RunnerChannels,
    private readonly opts: RunnerSessionOptions,
  ) {}

  /** Starts the run and follows it until the channel closes or the connection drops. */
  async run(request: RunPayloadInput): Promise<RunnerExit> {
    const payload = buildRunPayload(request);
    const channel = await this.channels.open(this.conn, this.opts.command);
    this.channel = channel;
    const started = performance.now();
    return new Promise<RunnerExit>((resolve) => {
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        offClose();
        this.settle(started);
        resolve(this.exit);
      };
      const offClose = this.conn.onClose(() => {
        this.exit.lost = !this.gotExit;
        finish();
      });
      channel.on('data', (chunk: Buffer) => this.onStdout(chunk));
      channel.stderr.on('data', (chunk: Buffer) => this.onStderr(chunk));
      channel.on('exit', (code: number | null, signal?: string) => {
        this.gotExit = true;
        this.exit.exitCode = code;
        this.exit.signal = normalizeSignal(signal) ?? signalFromShellStatus(code);
      });
      channel.on('close', finish);
      channel.on('error', () => undefined);
      channel.write(payload);
      if (this.word) this.sendWord();
    });
  }

  /** Asks the runner to kill the script's whole tree; remembered until the channel opens. */
  signal(word: ControlWord): void {
    if (this.word) return;
    this.word = word;
    this.sendWord();
  }

  private sendWord(): void {
    const ch = this.channel;
    if (!ch || !this.word) return;
    try {
      ch.write(controlLine(this.word));
    } catch {
      /* the channel is already going away */
    }
    // A runner that cannot answer (host frozen) must not hold the target forever.
    this.hardStop ??= setTimeout(
      () => ch.close(),
      this.opts.killGraceSeconds * 1000 + HARD_STOP_MARGIN_MS,
    );
  }

  private onStdout(chunk: Buffer): void {
    this.dataTick++;
    if (this.exit.started) {
      this.opts.stdout.write(chunk);
      return this.scheduleIdleFlush();
    }
    this.head = Buffer.concat([this.head, chunk]);
    const nl = this.head.indexOf(0x0a);
    if (nl === -1) {
      if (this.head.length > FIRST_LINE_MAX)
        this.exit.runnerError = 'unexpected output before the runner started';
      return;
    }
    const ready = parseReadyLine(this.head.subarray(0, nl).toString('utf8'));
    if (!ready) return; // kept in `head` for diagnose()
    this.exit.started = true;
    this.opts.onReady(ready);
    if (this.earlyErr.length) this.opts.stderr.write(this.earlyErr);
    const rest = this.head.subarray(nl + 1);
    this.head = Buffer.alloc(0);
    if (rest.length) this.opts.stdout.write(rest);
    this.scheduleIdleFlush();
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
    if (this.idle) clearTimeout(this.idle);
    if (this.hardStop) clearTimeout(this.hardStop);
    this.channel = null;
    if (!this.exit.started) this.diagnose();
    this.opts.stdout.flush();
    this.opts.stderr.flush();
    this.exit.durationMs = Math.round(performance.now() - started);
    if (!this.gotExit && this.conn.closed) this.exit.lost = true;
  }

  /** No ready line: tell a vanished runner from one that failed. */
  private diagnose(): void {
    const stderr = this.earlyErr.toString('utf8').trim();
    const error = parseErrorLine(this.head.toString('utf8'));
    if (error !== null) this.exit.runnerError = error;
    else if (looksLikeMissingRunner(this.exit.exitCode, stderr)) this.exit.runnerMissing = true;
    else this.exit.runnerError ??= stderr.slice(0, 500) || `exit ${this.exit.exitCode}`;
  }
}
