import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { ConnectOptions, RawConnection, Row } from './driver.js';
import { scrubError, sqlitePath } from './driver.js';

/**
 * Opens one better-sqlite3 handle on the file of a `sqlite:PATH` URL, creating the file
 * (and its folder) when missing, in WAL mode so readers do not block the writer.
 */
export async function connectSqlite(url: string, options: ConnectOptions = {}): Promise<RawConnection> {
  const path = sqlitePath(url);
  let db: Database.Database;
  try {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    db = new Database(path, { timeout: options.connectTimeoutMs ?? 10_000 });
    db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
  } catch (err) {
    throw scrubError(err);
  }
  let alive = true;
  return {
    backend: 'sqlite',
    get alive() {
      return alive && db.open;
    },
    async query<R extends Row = Row>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
      try {
        const statement = db.prepare(sql);
        const values = params.map(toSqliteValue);
        if (statement.reader) return statement.all(...values) as R[];
        statement.run(...values);
        return [];
      } catch (err) {
        throw scrubError(err);
      }
    },
    async exec(sql: string): Promise<void> {
      try {
        db.exec(sql);
      } catch (err) {
        throw scrubError(err);
      }
    },
    async ping(): Promise<void> {
      db.prepare('select 1').get();
    },
    async close(): Promise<void> {
      alive = false;
      if (db.open) db.close();
    },
    // A local file handle raises no errors while idle; nothing to listen to.
    onError() {},
  };
}

/** better-sqlite3 binds numbers, strings, bigints, buffers and null; booleans and dates are mapped. */
function toSqliteValue(value: unknown): unknown {
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (value instanceof Date) return value.toISOString();
  if (value === undefined) return null;
  return value;
}
