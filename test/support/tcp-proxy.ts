/**
 * A TCP proxy to the test Postgres whose behaviour the test switches, to reproduce
 * network failures deterministically:
 * - `pass`: forwards both ways.
 * - `hold`: new connections are accepted and held, never forwarded, until the test calls
 *   `failHeld()` (which resets them: the connect fails at a moment the test chooses).
 * - `freeze`: established connections stop forwarding and are never closed, like a peer
 *   gone silent behind a half-open TCP connection; new ones are held.
 */
import net from 'node:net';
import { PG_URL } from './services.js';

export type ProxyMode = 'pass' | 'hold' | 'freeze';

export interface TcpProxy {
  readonly port: number;
  mode: ProxyMode;
  /** Connections accepted in `hold` or `freeze` mode and not yet failed. */
  readonly held: number;
  /** Resets every held connection (their connects fail). */
  failHeld(): void;
  /** Starts forwarding every held connection (their connects go through). */
  passHeld(): void;
  /** A Postgres URL to `database` through the proxy. */
  url(database: string): string;
  close(): Promise<void>;
}

export async function tcpProxy(): Promise<TcpProxy> {
  const target = new URL(PG_URL);
  const targetPort = Number(target.port || 5432);
  const sockets = new Set<net.Socket>();
  const held = new Set<net.Socket>();
  let mode: ProxyMode = 'pass';
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => {
      sockets.delete(socket);
      held.delete(socket);
    });
  };
  const pipe = (client: net.Socket) => {
    const upstream = net.connect(targetPort, target.hostname);
    track(upstream);
    const forward = (from: net.Socket, to: net.Socket) => {
      from.on('data', (data) => {
        if (mode !== 'freeze') to.write(data);
      });
      from.on('end', () => {
        if (mode !== 'freeze') to.end();
      });
      from.on('close', () => {
        if (mode !== 'freeze') to.destroy();
      });
    };
    forward(client, upstream);
    forward(upstream, client);
  };
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    track(client);
    if (mode !== 'pass') {
      client.pause();
      held.add(client);
      return;
    }
    pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    get mode() {
      return mode;
    },
    set mode(next: ProxyMode) {
      mode = next;
    },
    get held() {
      return held.size;
    },
    failHeld() {
      for (const socket of held) socket.resetAndDestroy();
      held.clear();
    },
    passHeld() {
      for (const socket of held) {
        pipe(socket);
        socket.resume();
      }
      held.clear();
    },
    url(database: string) {
      const url = new URL(PG_URL);
      url.hostname = '127.0.0.1';
      url.port = String(port);
      url.pathname = `/${database}`;
      return url.toString();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
