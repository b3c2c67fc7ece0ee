import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { ClosedError } from '../../reporting/errors.js';
import type { ConnectOptions, RawConnection, Row } from './driver.js';
import { scrubError, sqlitePath } from './driver.js';

/**
 * Opens one better-sqlite3 handle on the file of a `sqlite:PATH` URL, creating the file
 * (and its folder) when missing, in WAL mode so readers do not block the writer.
 *
 * better-sqlite3 is synchronous, so SQLite's own busy timeout would spin the event loop's
 * only thread while another connection *of the same process* holds the write lock inside
 * a transaction that is waiting on an `await`: that holder could never commit, and the
 * waiter would fail after the whole timeout. `query` therefore waits for a lock
 * asynchronously (retrying on SQLITE_BUSY for up to `connectTimeoutMs`).
 */
export async function connectSqlite(url: string, options: ConnectOptions = {}): Promise<RawConnection> {
  const path = sqlitePath(url);
  const busyTimeoutMs = options.connectTimeoutMs ?? 10_000;
  let db: Database.Database;
  try {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    db = new Database(path, { timeout: busyTimeoutMs });
    db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 0');
  } catch (err) {
    throw scrubError(err);
  }
  let alive = true;
  // Statements waiting for a lock (the only ones that can be in flight: better-sqlite3
  // runs each synchronously).
  let waiting = 0;
  const openDb = (): Database.Database => {
    if (!db.open) throw new ClosedError('database connection');
    return db;
  };
  return {
    kind: 'sqlite',
    get alive() {
      return alive && db.open;
    },
    get inFlight() {
      return waiting;
    },
    async query<R extends Row = Row>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
      const values = params.map(toSqliteValue);
      waiting++;
      try {
        return await whenUnlocked(busyTimeoutMs, () => {
          const statement = openDb().prepare(sql);
          if (statement.reader) return statement.all(...values) as R[];
          statement.run(...values);
          return [];
        });
      } finally {
        waiting--;
      }
    },
    async exec(sql: string): Promise<void> {
      // A script cannot be retried (its first statements may have run), so it waits for
      // locks the blocking way; callers take the lock first with `query('BEGIN IMMEDIATE')`.
      openDb();
      try {
        db.pragma(`busy_timeout = ${Math.trunc(busyTimeoutMs)}`);
        db.exec(sql);
      } catch (err) {
        throw scrubError(err);
      } finally {
        if (db.open) db.pragma('busy_timeout = 0');
      }
    },
    async ping(): Promise<void> {
      openDb().prepare('select 1').get();
    },
    async close(): Promise<void> {
      alive = false;
      // Closing a handle inside a transaction rolls it back and releases its lock.
      if (db.open) db.close();
    },
    inTransaction(): boolean {
      return db.open && db.inTransaction;
    },
    // A local file handle raises no errors while idle; nothing to listen to.
    onError() {},
  };
}

/**
 * Runs one statement; while another connection holds the lock (SQLITE_BUSY, nothing was
 * executed), waits a little without blocking the thread and tries again, until
 * `timeoutMs` has passed.
 */
async function whenUnlocked<T>(timeoutMs: number, run: () => T): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return run();
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      const busy = typeof code === 'string' && code.startsWith('SQLITE_BUSY');
      if (err instanceof ClosedError) throw err;
      if (!busy || Date.now() >= deadline) throw scrubError(err);
    }
    await delay(Math.min(2 ** attempt, 25));
  }
}

/** better-sqlite3 binds numbers, strings, bigints, buffers and null; booleans and dates are mapped. */
function toSqliteValue(value: unknown): unknown {
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (value instanceof Date) return value.toISOString();
  if (value === undefined) return null;
  return value;
}
