import type { ClientChannel } from 'ssh2';
import type { RetryPolicy } from '../common/backoff';
import { openChannel } from '../ssh/run-command';
import type { PooledConnection } from '../ssh/ssh.types';
import { parseStandbyLine } from './protocol';

/**
 * Standbys one connection keeps at most, within the channels the pool leaves free below
 * sshd's MaxSessions (ssh.maxChannelsPerConnection): two for one runner command (base
 * dir), so a job that comes right after another still finds one that is ready while the
 * other is being started; one each for two.
 */
const STANDBYS_PER_CONNECTION = 2;
const STANDBYS_PER_COMMAND = 2;

interface Standby {
  command: string;
  channel: ClientChannel;
  /** The runner said its standby word: set up and waiting for its payload. */
  ready: boolean;
  dead: boolean;
  /** stdout so far that may still become the standby word. */
  early: Buffer;
  detach: () => void;
}

const STANDBY_HEAD = 'CRONIUM2 standby ';
const STANDBY_LINE_MAX = 128;

/**
 * What a standby printed on stdout so far: `ready` (exactly its standby word), `maybe` (a
 * start of it), or `dead` (anything else: a runner that failed or vanished, whose shell said
 * so; a runner prints nothing else before its payload).
 */
export function standbyState(out: Buffer): 'ready' | 'maybe' | 'dead' {
  const nl = out.indexOf(0x0a);
  const s = out.subarray(0, nl === -1 ? out.length : nl).toString('latin1');
  if (nl !== -1) {
    return nl === out.length - 1 && parseStandbyLine(s) !== null ? 'ready' : 'dead';
  }
  if (s.length > STANDBY_LINE_MAX) return 'dead';
  if (s.length <= STANDBY_HEAD.length) return STANDBY_HEAD.startsWith(s) ? 'maybe' : 'dead';
  return s.startsWith(STANDBY_HEAD) && /^\S*$/.test(s.slice(STANDBY_HEAD.length))
    ? 'maybe'
    : 'dead';
}

/** What a standby's login environment may print on stderr that is kept for the job. */
const NOISE_MAX = 4096;

/**
 * Opens runner channels. With prewarming on, each pooled connection keeps a runner
 * already started and blocked on its stdin (a standby) for each runner command it
 * serves (two for one base dir, one each for two: STANDBYS_PER_CONNECTION): a job takes it and only
 * writes its payload, so opening the session and starting the login shell and the
 * runner are off the job's critical path. A standby is ready once its runner said its
 * standby word (protocol.ts parseStandbyLine). The job still uses exactly one exec channel;
 * the next standby is opened once the job's channel has closed, so it never competes
 * with a running job for the host's CPU.
 */
export class RunnerChannels {
  private readonly standby = new WeakMap<PooledConnection, Map<string, Standby[]>>();
  /** Standbys being opened, per connection and command. */
  private readonly preparing = new WeakMap<PooledConnection, Map<string, number>>();
  /** What a standby's login shell printed on stderr before its job: the job's to log. */
  private readonly noise = new WeakMap<ClientChannel, Buffer>();
  /** The start of a standby word that had not fully arrived when a job took the channel. */
  private readonly early = new WeakMap<ClientChannel, Buffer>();
  private readonly told = new WeakSet<PooledConnection>();

  constructor(
    private readonly prewarm: boolean,
    private readonly openRetry: RetryPolicy,
  ) {}

  /**
   * A channel running `command`: its standby when there is a live one, else a new one.
   * Only `run` channels are prepared ahead (an `attach` names one run and is never a
   * standby).
   */
  async open(
    conn: PooledConnection,
    command: string,
    standby = true,
    refillAfter?: Promise<unknown>,
  ): Promise<ClientChannel> {
    if (!standby) return this.exec(conn, command);
    const list = this.standby.get(conn)?.get(command);
    // The one that said its word, else the oldest (the nearest to it).
    const at = list
      ? Math.max(
          0,
          list.findIndex((x) => x.ready),
        )
      : -1;
    const s = list && at >= 0 ? list.splice(at, 1)[0] : undefined;
    let channel: ClientChannel | null = null;
    if (s) {
      s.detach();
      // Not ready yet (its word is on the way) is good enough: the payload waits in the
      // channel until the runner reads it, no later than if we waited for the word.
      if (!s.dead && !conn.closed) {
        channel = s.channel;
        if (!s.ready && s.early.length) this.early.set(channel, s.early);
      } else s.channel.close();
    }
    channel ??= await this.exec(conn, command);
    if (this.prewarm) this.prepareAfter(conn, command, channel, refillAfter);
    return channel;
  }

  /**
   * What the login environment printed on stderr while `channel` waited as a standby
   * (sshd's "Could not chdir to home directory", a chatty profile), handed over once.
   */
  takeNoise(channel: ClientChannel): Buffer | null {
    const n = this.noise.get(channel) ?? null;
    this.noise.delete(channel);
    return n;
  }

  /**
   * What a standby taken before its word was complete had received of it: the session
   * reads it as the start of the channel's stdout (it strips the word).
   */
  takeEarly(channel: ClientChannel): Buffer | null {
    const e = this.early.get(channel) ?? null;
    this.early.delete(channel);
    return e;
  }

  /**
   * True the first time a job on `conn` has login noise to log: every login on the
   * connection says the same, so it is logged once per connection, not on every job.
   */
  firstNoise(conn: PooledConnection): boolean {
    if (this.told.has(conn)) return false;
    this.told.add(conn);
    return true;
  }

  /**
   * The next standby for `command` is opened once this channel has closed, and not before
   * `refillAfter` has settled: a fan-out's standbys wait for its last target, so their
   * setup (a login and a runner start on the host, channel work here) never competes with
   * the fan-out's own jobs.
   */
  private prepareAfter(
    conn: PooledConnection,
    command: string,
    channel: ClientChannel,
    refillAfter?: Promise<unknown>,
  ): void {
    const refill = () => this.prepare(conn, command);
    channel.once('close', () => (refillAfter ? void refillAfter.then(refill, refill) : refill()));
  }

  /** A channel refused during a MaxSessions burst is tried again (openChannel). */
  private exec(conn: PooledConnection, command: string): Promise<ClientChannel> {
    return openChannel(conn, command, this.openRetry);
  }

  /** Drops the standbys of a connection (e.g. its runner was redeployed). */
  discard(conn: PooledConnection): void {
    const ready = this.standby.get(conn);
    if (!ready) return;
    this.standby.delete(conn);
    for (const list of ready.values()) {
      for (const s of list) {
        s.detach();
        s.channel.close();
      }
    }
  }

  /**
   * Opens standbys for `command` up to STANDBYS_PER_COMMAND, within the connection's
   * STANDBYS_PER_CONNECTION; another command's second standby makes room for this one's
   * first.
   */
  private prepare(conn: PooledConnection, command: string): void {
    const table = this.standby.get(conn) ?? new Map<string, Standby[]>();
    this.standby.set(conn, table);
    const inFlight = this.preparing.get(conn) ?? new Map<string, number>();
    this.preparing.set(conn, inFlight);
    const count = (c: string) => (table.get(c)?.length ?? 0) + (inFlight.get(c) ?? 0);
    const total = () =>
      [...new Set([...table.keys(), ...inFlight.keys()])].reduce((n, c) => n + count(c), 0);
    while (!conn.closed && count(command) < STANDBYS_PER_COMMAND) {
      if (total() >= STANDBYS_PER_CONNECTION) {
        if (count(command) > 0) return; // one is enough while others share the connection
        const others = [...new Set([...table.keys(), ...inFlight.keys()])];
        const other = others.find((c) => c !== command && count(c) > 1);
        if (!other) return;
        const ready = table.get(other) ?? [];
        if (ready.length > 1) {
          const extra = ready.pop()!;
          extra.detach();
          extra.channel.close();
        } // else its second is still opening: it closes itself when it lands (openStandby)
      }
      this.openStandby(conn, command, table, inFlight);
    }
  }

  private openStandby(
    conn: PooledConnection,
    command: string,
    table: Map<string, Standby[]>,
    inFlight: Map<string, number>,
  ): void {
    const settle = () => {
      const n = (inFlight.get(command) ?? 1) - 1;
      if (n > 0) inFlight.set(command, n);
      else inFlight.delete(command);
    };
    inFlight.set(command, (inFlight.get(command) ?? 0) + 1);
    conn.exec(command).then((channel) => {
      settle();
      const entry: Standby = {
        command,
        channel,
        ready: false,
        dead: false,
        early: Buffer.alloc(0),
        detach: () => undefined,
      };
      // Ready once the runner said its standby word on stdout, whatever the login
      // environment said on stderr (kept for the job, not fatal). Other stdout before a
      // payload, or the end of the channel, means this runner is not usable (e.g. it
      // vanished from the server and the shell said so, then exited).
      const onNoise = (chunk: Buffer) => {
        const had = this.noise.get(channel) ?? Buffer.alloc(0);
        if (had.length < NOISE_MAX) {
          this.noise.set(channel, Buffer.concat([had, chunk]).subarray(0, NOISE_MAX));
        }
      };
      const onEnd = () => {
        entry.dead = true;
        const list = table.get(command);
        const i = list ? list.indexOf(entry) : -1;
        if (i >= 0) list!.splice(i, 1);
        entry.detach();
        channel.close(); // a runner that spoke before its payload is of no use
      };
      const onData = (chunk: Buffer) => {
        if (entry.ready) return onEnd(); // nothing comes after the word before a payload
        entry.early = Buffer.concat([entry.early, chunk]);
        const state = standbyState(entry.early);
        if (state === 'dead') return onEnd();
        if (state === 'ready') {
          entry.ready = true;
          entry.early = Buffer.alloc(0);
        }
      };
      channel.on('close', onEnd);
      channel.on('exit', onEnd);
      channel.on('data', onData);
      channel.stderr.on('data', onNoise);
      channel.on('error', onEnd);
      entry.detach = () => {
        channel.removeListener('close', onEnd);
        channel.removeListener('exit', onEnd);
        channel.removeListener('data', onData);
        channel.stderr.removeListener('data', onNoise);
        channel.removeListener('error', onEnd);
      };
      const list = table.get(command) ?? [];
      // a second one for this command only while the connection has room (another
      // command may have taken it since this one was asked for)
      const held =
        [...table.values()].reduce((n, l) => n + l.length, 0) +
        [...inFlight.values()].reduce((n, k) => n + k, 0);
      if (
        conn.closed ||
        list.length >= STANDBYS_PER_COMMAND ||
        (list.length > 0 && held >= STANDBYS_PER_CONNECTION) ||
        this.standby.get(conn) !== table
      ) {
        entry.detach();
        channel.close();
        return;
      }
      list.push(entry);
      table.set(command, list);
    }, settle);
  }
}
