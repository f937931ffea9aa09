import type { ClientChannel } from 'ssh2';
import type { RetryPolicy } from '../common/backoff';
import { openChannel } from '../ssh/run-command';
import type { PooledConnection } from '../ssh/ssh.types';

/** The longest a job's channel delays the opening of the next standby (see prepareAfter). */
const PREPARE_DELAY_MS = 100;

interface Standby {
  command: string;
  channel: ClientChannel;
  dead: boolean;
  detach: () => void;
}

/**
 * Opens runner channels. With prewarming on, each pooled connection keeps one runner
 * already started and blocked on its stdin (a standby): a job takes it and only writes
 * its payload, so opening the session and starting the login shell and the runner are
 * off the job's critical path. The job still uses exactly one exec channel; a new
 * standby is opened in the background for the next job. One standby per connection at
 * most, so the extra session stays within sshd's MaxSessions margin.
 */
export class RunnerChannels {
  private readonly standby = new WeakMap<PooledConnection, Standby>();
  private readonly preparing = new WeakSet<PooledConnection>();
  private readonly mixed = new WeakSet<PooledConnection>();

  constructor(
    private readonly prewarm: boolean,
    private readonly openRetry: RetryPolicy,
  ) {}

  /**
   * A channel running `command`: the standby when it runs the same command, else a new
   * one. Only `run` channels are prepared ahead (an `attach` names one run and is never
   * a standby).
   */
  async open(conn: PooledConnection, command: string, standby = true): Promise<ClientChannel> {
    if (!standby) return this.exec(conn, command);
    const s = this.standby.get(conn);
    this.standby.delete(conn);
    let channel: ClientChannel | null = null;
    if (s) {
      s.detach();
      if (!s.dead && s.command === command && !conn.closed) channel = s.channel;
      else {
        s.channel.close();
        // Several runners (base dirs) share this connection: a standby would mostly be
        // thrown away, and closing channels briefly still count against MaxSessions.
        if (!s.dead) this.mixed.add(conn);
      }
    }
    channel ??= await this.exec(conn, command);
    if (this.prewarm && !this.mixed.has(conn)) this.prepareAfter(conn, command, channel);
    return channel;
  }

  /**
   * The next standby is opened once this channel's output ends (a short job: its login
   * shell and the runner's standby work then do not compete for the CPU with the job),
   * or after PREPARE_DELAY_MS (a long job, or concurrent ones on the connection).
   */
  private prepareAfter(conn: PooledConnection, command: string, channel: ClientChannel): void {
    let timer: NodeJS.Timeout | null = null;
    const go = () => {
      if (timer) clearTimeout(timer);
      timer = null;
      channel.removeListener('end', go);
      channel.removeListener('close', go);
      this.prepare(conn, command);
    };
    channel.once('end', go);
    channel.once('close', go);
    timer = setTimeout(go, PREPARE_DELAY_MS);
    timer.unref();
  }

  /** A channel refused during a MaxSessions burst is tried again (openChannel). */
  private exec(conn: PooledConnection, command: string): Promise<ClientChannel> {
    return openChannel(conn, command, this.openRetry);
  }

  /** Drops the standby of a connection (e.g. its runner was redeployed). */
  discard(conn: PooledConnection): void {
    const s = this.standby.get(conn);
    if (!s) return;
    this.standby.delete(conn);
    s.detach();
    s.channel.close();
  }

  private prepare(conn: PooledConnection, command: string): void {
    if (this.preparing.has(conn) || conn.closed) return;
    this.preparing.add(conn);
    conn.exec(command).then(
      (channel) => {
        this.preparing.delete(conn);
        const entry: Standby = { command, channel, dead: false, detach: () => undefined };
        // Any sign of life before a payload means this runner is not usable
        // (e.g. it vanished from the server and the shell complained).
        const onEnd = () => {
          entry.dead = true;
          if (this.standby.get(conn) === entry) this.standby.delete(conn);
          entry.detach();
          channel.close(); // a runner that spoke before its payload is of no use
        };
        channel.on('close', onEnd);
        channel.on('exit', onEnd);
        channel.on('data', onEnd);
        channel.stderr.on('data', onEnd);
        channel.on('error', onEnd);
        entry.detach = () => {
          channel.removeListener('close', onEnd);
          channel.removeListener('exit', onEnd);
          channel.removeListener('data', onEnd);
          channel.stderr.removeListener('data', onEnd);
          channel.removeListener('error', onEnd);
        };
        if (conn.closed || this.standby.has(conn)) {
          entry.detach();
          channel.close();
          return;
        }
        this.standby.set(conn, entry);
      },
      () => this.preparing.delete(conn),
    );
  }
}
