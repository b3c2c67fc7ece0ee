import { once } from 'node:events';
import net from 'node:net';

/** A loopback port that nothing listens on (it was free a moment ago): connections to it are refused. */
export async function closedPort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

/** A loopback port free a moment ago, for a server a test starts on it. */
export const freePort = closedPort;
