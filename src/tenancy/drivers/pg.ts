import pg from 'pg';
import type { ConnectOptions, RawConnection, Row } from './driver.js';
import { scrubError } from './driver.js';

/** Opens one node-postgres `Client` to `url`. */
export async function connectPostgres(url: string, options: ConnectOptions = {}): Promise<RawConnection> {
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: connectTimeoutMs,
    application_name: 'tenant-fleet',
    // A peer gone silent (half-open TCP) is noticed by the kernel, not only by a query.
    keepAlive: true,
  });
  const listeners: Array<(err: Error) => void> = [];
  let alive = true;
  // Always listen: an idle client whose kind is terminated emits 'error', and an
  // unheard 'error' event would crash the process.
  client.on('error', (err) => {
    alive = false;
    const safe = scrubError(err);
    for (const listener of listeners) listener(safe);
  });
  client.on('end', () => {
    alive = false;
  });
  try {
    await client.connect();
  } catch (err) {
    alive = false;
    await endWithin(client, Math.min(CLOSE_WAIT_MS, connectTimeoutMs));
    throw scrubError(err);
  }
  let closing: Promise<void> | undefined;
  const conn: RawConnection = {
    kind: 'postgres',
    get alive() {
      return alive;
    },
    async query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<R[]> {
      try {
        const result = await client.query(sql, params as unknown[] | undefined);
        return (result.rows ?? []) as R[];
      } catch (err) {
        if (isConnectionLost(err)) alive = false;
        throw scrubError(err);
      }
    },
    async exec(sql: string): Promise<void> {
      try {
        await client.query(sql);
      } catch (err) {
        if (isConnectionLost(err)) alive = false;
        throw scrubError(err);
      }
    },
    async ping(): Promise<void> {
      await conn.query('select 1');
    },
    close(): Promise<void> {
      alive = false;
      closing ??= endWithin(client, Math.min(CLOSE_WAIT_MS, connectTimeoutMs));
      return closing;
    },
    onError(listener) {
      listeners.push(listener);
    },
    inTransaction(): boolean {
      // 'I' idle, 'T' in a transaction block, 'E' in a failed one (null before the first
      // ReadyForQuery, which connect() has already awaited).
      const status = client.getTransactionStatus();
      return status === 'T' || status === 'E';
    },
  };
  return conn;
}

/** How long `close()` waits at most for the server to see the goodbye (less when connects time out sooner). */
const CLOSE_WAIT_MS = 2_000;

/**
 * Ends the client, and destroys its socket when that has not finished within `ms`: over
 * a half-open TCP connection `end()` never resolves, and the pool frees the connection's
 * budget slot only once its close has finished.
 */
function endWithin(client: pg.Client, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      const stream = (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection
        ?.stream;
      stream?.destroy();
      resolve();
    }, ms);
    client
      .end()
      .catch(() => {})
      .finally(() => {
        clearTimeout(timer);
        resolve();
      });
  });
}

/**
 * True when a failed query means the connection itself is gone, so `alive` must turn
 * false at once rather than when the socket's 'end' event arrives: the server ended the
 * session (SQLSTATE class 08, or 57P0x after `pg_terminate_backend` or a shutdown), or
 * the error is not the server's answer at all (a reset socket, "Connection terminated").
 */
function isConnectionLost(err: unknown): boolean {
  if (!(err instanceof pg.DatabaseError)) return true;
  const code = err.code ?? '';
  return code.startsWith('08') || code.startsWith('57P');
}
