import pg from 'pg';
import type { ConnectOptions, RawConnection, Row } from './driver.js';
import { scrubError } from './driver.js';

/** Opens one node-postgres `Client` to `url`. */
export async function connectPostgres(url: string, options: ConnectOptions = {}): Promise<RawConnection> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    application_name: 'tenant-fleet',
  });
  const listeners: Array<(err: Error) => void> = [];
  let alive = true;
  // Always listen: an idle client whose backend is terminated emits 'error', and an
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
    await client.end().catch(() => {});
    throw scrubError(err);
  }
  let closing: Promise<void> | undefined;
  const conn: RawConnection = {
    backend: 'postgres',
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
      closing ??= client.end().catch(() => {});
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
