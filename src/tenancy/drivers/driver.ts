import { ClosedError, ConfigError, redactUrl } from '../../reporting/errors.js';

/** The key of {@link RawConnection}'s preface method (internal: not exported by the package). */
export const PREFACE: unique symbol = Symbol('tenant-fleet preface');

/** The database servers tenant-fleet talks to. */
export type DatabaseKind = 'postgres' | 'mysql' | 'sqlite';

/** A row as a driver returns it. */
export type Row = Record<string, unknown>;

/**
 * One raw connection to one database, the same shape for every kind.
 * Placeholders stay each driver's own: `$1` on Postgres, `?` on MySQL and SQLite.
 */
export interface RawConnection {
  readonly kind: DatabaseKind;
  /** Runs one statement; resolves to its rows (an empty array for statements without rows). */
  query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  /** Runs a script of several statements without parameters (migrations, DDL). */
  exec(sql: string): Promise<void>;
  /**
   * Postgres only: statements the next statement sent (by `query`, `exec` or `ping`)
   * carries ahead of it, in the same write, so they cost no round trip of their own. The
   * statement runs only if they all succeed; if one fails, the statement rejects with its
   * error, the next statement carries them again, and `alive` turns false (the pool then
   * closes the connection when it is given back). Undefined clears them. Keyed by a
   * symbol the package does not export: handlers reach this connection as `ctx.db.raw`,
   * and must not replace the checkout's preface by accident.
   */
  [PREFACE]?(statements: readonly string[] | undefined): void;
  /** Resolves when the connection answers a trivial query. */
  ping(): Promise<void>;
  /** Closes the connection; idempotent, never rejects. */
  close(): Promise<void>;
  /**
   * Registers a callback for errors raised while the connection sits idle (the server
   * killed it, the network dropped). The driver always listens, so such an error never
   * crashes the process; after one, `alive` is false.
   */
  onError(listener: (err: Error) => void): void;
  /** False once the connection errored or was closed. */
  readonly alive: boolean;
  /**
   * True while the session is inside a transaction block (open or failed), as the server
   * last reported it (Postgres' ReadyForQuery status, MySQL's SERVER_STATUS_IN_TRANS flag
   * or autocommit off, SQLite's `inTransaction`). A pool never lends a connection in that
   * state to another caller.
   */
  inTransaction(): boolean;
  /**
   * Statements sent or queued and not yet answered. A connection given back with any is
   * not lent again: `close()` cancels them on the server first.
   */
  readonly inFlight: number;
  /**
   * The statement another session of the same server runs to stop this connection's
   * running statement (MySQL's `KILL QUERY <thread id>`). Absent where `close()` cancels
   * without a session of its own (Postgres' cancel request) or nothing runs remotely (SQLite).
   */
  readonly cancelStatement?: string;
}

/** Options every driver's `connect` takes. */
export interface ConnectOptions {
  /** Give up opening the connection after this long. @default 10_000 */
  connectTimeoutMs?: number;
}

/** How long `close()` waits at most for the server to see the goodbye (less when connects time out sooner). */
export const CLOSE_WAIT_MS = 2_000;

/**
 * How long `close()` waits at most, once it asked the server to cancel a statement still
 * running, for the server to end the session. Its budget slot is held until then, so the
 * server never holds more sessions than the budget while an abandoned statement winds down.
 */
export const ABANDON_WAIT_MS = 10_000;

/**
 * Runs a connection's statements one at a time and counts those not yet answered. Once
 * closed, statements not yet started reject with {@link ClosedError} and are never sent.
 */
export class StatementQueue {
  #tail: Promise<unknown> = Promise.resolve();
  #size = 0;
  #closed = false;

  /** Statements running or waiting their turn. */
  get size(): number {
    return this.#size;
  }

  /** Runs `statement` after every statement queued before it. */
  run<T>(statement: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new ClosedError('database connection'));
    this.#size++;
    const result = this.#tail
      .then(() => {
        if (this.#closed) throw new ClosedError('database connection');
        return statement();
      })
      .finally(() => {
        this.#size--;
      });
    this.#tail = result.catch(() => {});
    return result;
  }

  /** Resolves once every statement run so far has settled. */
  settled(): Promise<void> {
    return this.#tail.then(() => {});
  }

  /** Stops starting statements; true when some were still running or queued. */
  close(): boolean {
    this.#closed = true;
    return this.#size > 0;
  }
}

const SCHEMES: Record<string, DatabaseKind> = {
  'postgres:': 'postgres',
  'postgresql:': 'postgres',
  'mysql:': 'mysql',
  'mariadb:': 'mysql',
  'sqlite:': 'sqlite',
};

/** The kind a connection URL names by its scheme; {@link ConfigError} for any other scheme. */
export function databaseKindOf(url: string): DatabaseKind {
  const scheme = /^([a-z][a-z0-9+.-]*:)/i.exec(url)?.[1]?.toLowerCase();
  const kind = scheme ? SCHEMES[scheme] : undefined;
  if (!kind) {
    throw new ConfigError(
      'url',
      `Expected a database URL starting with postgres://, postgresql://, mysql://, mariadb:// or sqlite:, got ${scheme ? `scheme ${JSON.stringify(scheme)}` : 'a value without a scheme'}`,
    );
  }
  return kind;
}

/** The file path of a `sqlite:PATH` URL (`sqlite:./a.db`, `sqlite:/abs/a.db`, `sqlite:///abs/a.db`). */
export function sqlitePath(url: string): string {
  const rest = url.replace(/^sqlite:/i, '');
  const path = rest.startsWith('//') ? rest.slice(2) : rest;
  if (path === '') throw new ConfigError('url', 'Expected a file path after "sqlite:", got an empty one');
  return decodeURIComponent(path);
}

/** Where a database URL points, without its credentials: `host:port`, or a SQLite file. */
export function addressOf(url: string): string {
  try {
    const kind = databaseKindOf(url);
    if (kind === 'sqlite') return sqlitePath(url);
    const parsed = new URL(url);
    return `${parsed.hostname || 'localhost'}:${parsed.port || (kind === 'postgres' ? 5432 : 3306)}`;
  } catch {
    return 'an address that does not parse';
  }
}

/**
 * Makes a driver error safe to show: its message loses any URL password. The error is
 * rethrown as is otherwise, so callers can still read the server's error code.
 */
export function scrubError(err: unknown): Error {
  const error = err instanceof Error ? err : new Error(String(err));
  error.message = redactUrl(error.message);
  if (error.stack) error.stack = redactUrl(error.stack);
  // Drivers hang the offending input on the error too (mysql2's ERR_INVALID_URL keeps
  // the whole URL in `input`): scrub every string property, not just the message.
  const fields = error as unknown as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    const value = fields[key];
    if (typeof value === 'string') fields[key] = redactUrl(value);
  }
  return error;
}
