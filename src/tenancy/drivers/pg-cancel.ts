/**
 * Postgres' cancel request: a separate, short-lived socket carrying the backend's pid and
 * secret key, which the server answers by interrupting that backend's running statement
 * and closing the socket. It starts no session, so it never shows in pg_stat_activity and
 * costs no connection of the budget.
 */
import { connect as connectTcp, type Socket } from 'node:net';

/** Where and which backend to cancel. */
export interface CancelTarget {
  /** Host name, or a Unix socket folder (starting with '/'). */
  host: string;
  port: number;
  processID: number;
  secretKey: number;
}

/** The protocol's CancelRequest code (1234 << 16 | 5678). */
const CANCEL_REQUEST_CODE = 80877102;

/**
 * Sends a cancel request and resolves once the server closed the socket (it has read the
 * request), or after `timeoutMs`, or on a socket error. Never rejects: a cancel that could
 * not be delivered leaves the caller's own bounded wait to end the connection.
 */
export function sendCancelRequest(target: CancelTarget, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    let socket: Socket;
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    socket = target.host.startsWith('/')
      ? connectTcp(`${target.host}/.s.PGSQL.${target.port}`)
      : connectTcp(target.port, target.host);
    socket.on('connect', () => {
      const packet = Buffer.alloc(16);
      packet.writeInt32BE(16, 0);
      packet.writeInt32BE(CANCEL_REQUEST_CODE, 4);
      packet.writeInt32BE(target.processID, 8);
      packet.writeInt32BE(target.secretKey, 12);
      socket.end(packet);
    });
    socket.on('error', done);
    socket.on('close', done);
  });
}
