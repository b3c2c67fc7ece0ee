/**
 * Where the test suites find the real services, and helpers to give each suite names of
 * its own. Read from the environment here, in the test entry point, never in src/.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Postgres server (the suite creates its own databases on it). */
export const PG_URL = process.env.FLEET_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
/** MySQL / MariaDB server (the suite creates its own databases on it). */
export const MYSQL_URL = process.env.FLEET_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/mysql';
/** Redis server (each suite uses its own key prefix). */
export const REDIS_URL = process.env.FLEET_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A short random suffix for names: `uniqueName('reg')` → `reg_3f9a1c`. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(4).toString('hex')}`;
}

/** `url` with its path (database name) replaced. */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/** A fresh temporary folder for SQLite files. */
export function tempDir(prefix = 'tenant-fleet-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}
