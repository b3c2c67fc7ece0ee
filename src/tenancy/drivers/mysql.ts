import type { Socket } from 'node:net';
import mysql from 'mysql2/promise';
import { ClosedError } from '../../reporting/errors.js';
import type { ConnectOptions, RawConnection, Row } from './driver.js';
import { ABANDON_WAIT_MS, CLOSE_WAIT_MS, StatementQueue, scrubError } from './driver.js';

/** MySQL's server status flags (in every OK packet): a transaction is open; autocommit is on. */
const SERVER_STATUS_IN_TRANS = 0x0001;
const SERVER_STATUS_AUTOCOMMIT = 0x0002;

/** Opens one mysql2 connection to `url` (`mysql://` or `mariadb://`). */
export async function connectMysql(url: string, options: ConnectOptions = {}): Promise<RawConnection> {
  let connection: mysql.Connection;
  try {
    connection = await mysql.createConnection({
      uri: url.replace(/^mariadb:/i, 'mysql:'),
      connectTimeout: options.connectTimeoutMs ?? 10_000,
      multipleStatements: false,
      dateStrings: false,
      // DATETIME has no zone: read and write it as UTC so a Date round-trips the same
      // whatever the process's TZ (the default, 'local', shifts it between machines).
      timezone: 'Z',
      supportBigNumbers: true,
    });
  } catch (err) {
    throw scrubError(err);
  }
  const listeners: Array<(err: Error) => void> = [];
  let alive = true;
  // mysql2 emits 'error' on the connection for fatal errors while idle; listen always.
  connection.on('error', (err: Error) => {
    alive = false;
    const safe = scrubError(err);
    for (const listener of listeners) listener(safe);
  });
  connection.on('end', () => {
    alive = false;
  });
  // The status flags of the last OK packet. A result set carries none mysql2 shows, but a
  // SELECT neither opens nor ends a transaction unless autocommit is off, which the flags
  // of the SET that turned it off already say.
  // Until the first OK packet, the flags the server sent in its handshake (autocommit off
  // by the server's default shows there).
  const handshake = (
    connection as unknown as { connection?: { _handshakePacket?: { statusFlags?: unknown } } }
  ).connection?._handshakePacket?.statusFlags;
  let status = typeof handshake === 'number' ? handshake : SERVER_STATUS_AUTOCOMMIT;
  const statements = new StatementQueue();
  let closing: Promise<void> | undefined;
  const run = async <R extends Row>(sql: string, params?: readonly unknown[]): Promise<R[]> => {
    try {
      const [rows] = await connection.query(sql, params as unknown[] | undefined);
      const header = Array.isArray(rows) ? rows[rows.length - 1] : rows;
      const flags = (header as { serverStatus?: unknown } | undefined)?.serverStatus;
      if (typeof flags === 'number') status = flags;
      return Array.isArray(rows) ? (rows as R[]) : [];
    } catch (err) {
      if ((err as { fatal?: boolean }).fatal) alive = false;
      if (closing) throw new ClosedError('database connection', { cause: scrubError(err) });
      throw scrubError(err);
    }
  };
  const conn: RawConnection = {
    kind: 'mysql',
    get alive() {
      return alive;
    },
    get inFlight() {
      return statements.size;
    },
    cancelStatement: `KILL QUERY ${Math.trunc(connection.threadId)}`,
    query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<R[]> {
      return statements.run(() => run<R>(sql, params));
    },
    async exec(sql: string): Promise<void> {
      // Scripts run statement by statement, so a connection never needs multipleStatements
      // (which would widen what an injected string could do).
      for (const statement of splitSqlScript(sql)) await conn.query(statement);
    },
    async ping(): Promise<void> {
      if (closing) throw new ClosedError('database connection');
      try {
        await connection.ping();
      } catch (err) {
        alive = false;
        throw scrubError(err);
      }
    },
    close(): Promise<void> {
      alive = false;
      closing ??= (async () => {
        // The server runs an abandoned statement to its end whatever happens to the socket,
        // and ends the session only then: wait for that (bounded). Stopping it sooner takes
        // another session (`cancelStatement`), which only the owner of the budget can pay for.
        const abandoned = statements.close();
        await closeAndWait(connection, abandoned ? ABANDON_WAIT_MS : CLOSE_WAIT_MS);
      })();
      return closing;
    },
    onError(listener) {
      listeners.push(listener);
    },
    inTransaction(): boolean {
      return (status & SERVER_STATUS_IN_TRANS) !== 0 || (status & SERVER_STATUS_AUTOCOMMIT) === 0;
    },
  };
  return conn;
}

/**
 * Ends the connection and resolves once its socket has closed. mysql2's own `end()`
 * resolves before the QUIT packet is even written, so the server would still count the
 * connection after `close()` resolved: TenantPools' budget, which frees a slot only once
 * a connection is closed, must not see it gone before the server does.
 */
function closeAndWait(connection: mysql.Connection, waitMs: number): Promise<void> {
  const stream = (connection as unknown as { connection?: { stream?: Socket } }).connection?.stream;
  return new Promise<void>((resolve) => {
    if (!stream || stream.destroyed) {
      connection.destroy();
      resolve();
      return;
    }
    const timer = setTimeout(() => {
      connection.destroy();
      resolve();
    }, waitMs);
    stream.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    connection.end().catch(() => connection.destroy());
  });
}

/**
 * Splits a SQL script on semicolons that end a statement, leaving semicolons inside
 * quotes and comments alone. Enough for migration files; not a SQL parser.
 */
export function splitSqlScript(sql: string): string[] {
  const statements: string[] = [];
  let current = '';
  let quote: string | null = null;
  for (let i = 0; i < sql.length; i++) {
    const ch = sql[i]!;
    const next = sql[i + 1];
    if (quote) {
      current += ch;
      if (ch === '\\' && quote !== '`') {
        current += next ?? '';
        i++;
      } else if (ch === quote) quote = null;
      continue;
    }
    if (ch === '-' && next === '-') {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? sql.length : end;
      current += '\n';
      continue;
    }
    if (ch === '/' && next === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end === -1 ? sql.length : end + 1;
      continue;
    }
    if (ch === "'" || ch === '"' || ch === '`') quote = ch;
    if (ch === ';') {
      if (current.trim()) statements.push(current.trim());
      current = '';
      continue;
    }
    current += ch;
  }
  if (current.trim()) statements.push(current.trim());
  return statements;
}
