/**
 * Applies numbered SQL migrations to one tenant, over one connection lent by TenantPools,
 * recording each applied version in a `fleet_migrations` table inside the tenant's own
 * schema (schema mode) or database (database mode), so a rerun applies only what is new.
 *
 * Two runs on the same tenant at once do not both apply a file: Postgres takes an
 * advisory lock per (database, schema), MySQL a named lock per database, and SQLite
 * re-checks the version inside a `BEGIN IMMEDIATE` transaction.
 */
import { createHash } from 'node:crypto';
import { FleetError } from '../reporting/errors.js';
import type { DatabaseKind, Row } from '../tenancy/drivers/driver.js';
import type { Migration } from './migration-files.js';

/** What applying migrations needs of a connection (a `TenantConnection` fits). */
export interface MigrationConnection {
  readonly kind: DatabaseKind;
  /** The tenant's schema in schema mode (Postgres); null in database mode. */
  readonly schema: string | null;
  query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  readonly raw: { exec(sql: string): Promise<void> };
}

/** What one tenant's run did. */
export interface TenantMigrationOutcome {
  /**
   * Versions applied by this run, in order; with `since`, also those another job recorded
   * at or after `since` (it ran during this run: a job of an earlier run left queued).
   */
  applied: number[];
  /** Versions found already applied (before `since`, when given). */
  skipped: number[];
  /** Applied versions whose file has changed since (they are not run again). */
  changed: number[];
}

/** A migration file failed on a tenant; earlier files of the run stay applied. */
export class MigrationFailedError extends FleetError {
  readonly version: number;
  /** The file's name without `.sql` (`001_create_reports`), as the directory lists it. */
  readonly migration: string;

  constructor(migration: Migration, cause: unknown) {
    const message = cause instanceof Error ? cause.message : String(cause);
    const label = migration.file?.replace(/\.sql$/, '') ?? `${migration.version}_${migration.name}`;
    super('MIGRATION_FAILED', `Migration ${label} failed: ${message}`, { cause });
    this.version = migration.version;
    this.migration = label;
  }
}

/**
 * Applies the migrations of `migrations` not yet recorded in the tenant's `fleet_migrations`.
 * `since` (epoch ms): the start of the run this call belongs to; a version the table says
 * was applied from then on counts as applied, whoever applied it, so the outcome tells
 * what this run changed even when another job got there first.
 */
export async function applyMigrations(
  conn: MigrationConnection,
  migrations: readonly Migration[],
  since = Number.POSITIVE_INFINITY,
): Promise<TenantMigrationOutcome> {
  const table =
    conn.kind === 'postgres' && conn.schema ? `"${conn.schema}".fleet_migrations` : 'fleet_migrations';
  const unlock = await lockTenant(conn);
  try {
    await conn.query(
      `CREATE TABLE IF NOT EXISTS ${table} (version BIGINT PRIMARY KEY, name VARCHAR(255) NOT NULL, checksum CHAR(64) NOT NULL, applied_at BIGINT NOT NULL)`,
    );
    const rows = await conn.query<{ version: unknown; checksum: unknown; applied_at: unknown }>(
      `SELECT version, checksum, applied_at FROM ${table}`,
    );
    const recorded = new Map(rows.map((row) => [Number(row.version), row]));
    const outcome: TenantMigrationOutcome = { applied: [], skipped: [], changed: [] };
    const appliedMeanwhile = async (version: number) => {
      const at = await conn.query<{ applied_at: unknown }>(
        `SELECT applied_at FROM ${table} WHERE version = ${conn.kind === 'postgres' ? '$1' : '?'}`,
        [version],
      );
      return at.length > 0 && Number(at[0]!.applied_at) >= since;
    };
    for (const migration of migrations) {
      const row = recorded.get(migration.version);
      if (row !== undefined) {
        if (Number(row.applied_at) >= since) outcome.applied.push(migration.version);
        else outcome.skipped.push(migration.version);
        if (String(row.checksum) !== migration.checksum) outcome.changed.push(migration.version);
        continue;
      }
      if (await applyOne(conn, table, migration)) outcome.applied.push(migration.version);
      else if (await appliedMeanwhile(migration.version)) outcome.applied.push(migration.version);
      else outcome.skipped.push(migration.version);
    }
    return outcome;
  } finally {
    // A dead connection lost its lock with its session; the pool discards it anyway.
    await unlock().catch(() => undefined);
  }
}

// Postgres and SQLite run DDL inside transactions: the file and its record commit
// together or not at all. MySQL commits DDL implicitly, so a file that fails halfway
// leaves its earlier statements applied and its version unrecorded.
async function applyOne(conn: MigrationConnection, table: string, migration: Migration): Promise<boolean> {
  const p = conn.kind === 'postgres' ? ['$1', '$2', '$3', '$4'] : ['?', '?', '?', '?'];
  const record = () =>
    conn.query(`INSERT INTO ${table} (version, name, checksum, applied_at) VALUES (${p.join(', ')})`, [
      migration.version,
      migration.name,
      migration.checksum,
      Date.now(),
    ]);
  if (conn.kind === 'mysql') {
    try {
      await conn.raw.exec(migration.sql);
    } catch (err) {
      throw new MigrationFailedError(migration, err);
    }
    await record();
    return true;
  }
  await conn.query(conn.kind === 'sqlite' ? 'BEGIN IMMEDIATE' : 'BEGIN');
  try {
    // Another run may have applied it since we read the table (SQLite has no lock before this).
    const done = await conn.query(`SELECT 1 AS found FROM ${table} WHERE version = ${p[0]}`, [
      migration.version,
    ]);
    if (done.length > 0) {
      await conn.query('ROLLBACK');
      return false;
    }
    try {
      await conn.raw.exec(migration.sql);
    } catch (err) {
      throw new MigrationFailedError(migration, err);
    }
    await record();
    await conn.query('COMMIT');
    return true;
  } catch (err) {
    await conn.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

async function lockTenant(conn: MigrationConnection): Promise<() => Promise<void>> {
  if (conn.kind === 'postgres') {
    const key = `fleet_migrations:${conn.schema ?? ''}`;
    await conn.query('SELECT pg_advisory_lock(hashtext(current_database() || $1))', [key]);
    return async () => {
      await conn.query('SELECT pg_advisory_unlock(hashtext(current_database() || $1))', [key]);
    };
  }
  if (conn.kind === 'mysql') {
    const [row] = await conn.query<{ db: string | null }>('SELECT DATABASE() AS db');
    // Lock names are server-wide and at most 64 characters: hash the database name.
    const name = `fleet_migrations:${createHash('sha1').update(String(row?.db)).digest('hex')}`;
    const [got] = await conn.query<{ locked: unknown }>('SELECT GET_LOCK(?, 60) AS locked', [name]);
    if (Number(got?.locked) !== 1)
      throw new Error('Expected the tenant migration lock within 60 s, got none');
    return async () => {
      await conn.query('SELECT RELEASE_LOCK(?)', [name]);
    };
  }
  return async () => {};
}
