/**
 * A loopback TCP proxy between the service and an sshd, to break connections the way
 * networks do: drop (every socket destroyed at once), stall (nothing forwarded, sockets
 * kept open: a black hole) or slow (each chunk delayed). Modes apply to the connections
 * open at the time; new connections are forwarded normally unless `stallNew` says so.
 */
import * as net from 'node:net';

interface Pair {
  client: net.Socket;
  server: net.Socket;
  stalled: boolean;
}

export interface TcpProxy {
  port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections open now. */
  readonly open: number;
  /** Destroys every open connection (both sides), like a network that went away. */
  drop(): void;
  /** Stops forwarding on every open connection and keeps the sockets open. */
  stall(): void;
  /** Delivers each chunk `ms` after it came (0: at once) on every connection, open and new. */
  slow(ms: number): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let accepted = 0;
  let delayMs = 0;

  /** Forwards `from` to `to` in order, each chunk after the current delay. */
  const pipe = (pair: Pair, from: net.Socket, to: net.Socket) => {
    let chain = Promise.resolve();
    let queued = 0;
    from.on('data', (chunk: Buffer) => {
      if (pair.stalled) return; // a black hole: read and forget
      const ms = delayMs;
      if (ms === 0 && queued === 0) {
        to.write(chunk);
        return;
      }
      // Each chunk `ms` after it came (latency, not bandwidth), and behind the chunks
      // still delayed even when the delay is off now: order is kept.
      const due = Date.now() + ms;
      queued++;
      chain = chain.then(
        () =>
          new Promise<void>((resolve) =>
            setTimeout(
              () => {
                queued--;
                if (!pair.stalled && !to.destroyed) to.write(chunk);
                resolve();
              },
              Math.max(0, due - Date.now()),
            ),
          ),
      );
    });
  };

  const server = net.createServer((client) => {
    accepted++;
    client.setNoDelay(true);
    const upstream = net.connect({ host: target.host, port: target.port });
    upstream.setNoDelay(true);
    const pair: Pair = { client, server: upstream, stalled: false };
    pairs.add(pair);
    const end = () => {
      if (!pairs.delete(pair)) return;
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on('error', end);
      s.on('close', () => {
        // A stalled connection is kept until its peer gives up on it.
        if (!pair.stalled || s === client) end();
      });
    }
    pipe(pair, client, upstream);
    pipe(pair, upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;

  const drop = () => {
    for (const p of [...pairs]) {
      pairs.delete(p);
      p.client.destroy();
      p.server.destroy();
    }
  };

  return {
    port,
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    drop,
    stall() {
      for (const p of pairs) p.stalled = true;
    },
    slow(ms: number) {
      delayMs = ms;
    },
    close: () =>
      new Promise<void>((resolve) => {
        drop();
        server.close(() => resolve());
      }),
  };
}
