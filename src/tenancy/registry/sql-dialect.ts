/**
 * What differs between the three registry kinds: the DDL of `fleet_orgs`, placeholders,
 * how a transaction starts, how a duplicate key shows up, and how rows come back (Postgres
 * returns booleans and Dates, MySQL and SQLite return 0/1, and SQLite returns text dates).
 * `registry.ts` speaks only through this file, so its queries are written once.
 */

import { ValidationError } from '../../reporting/errors.js';
import type { DatabaseKind, RawConnection, Row } from '../drivers/driver.js';
import type { Org, StorageMode } from '../org.js';

/** The registry's table. */
export const ORGS_TABLE = 'fleet_orgs';

/**
 * Two orgs on one schema would read and write each other's rows, so `schema_name` is
 * unique. Database-mode orgs have a null schema name, and NULLs never collide in a unique
 * index on any of the three kinds.
 */
export const SCHEMA_NAME_INDEX = `${ORGS_TABLE}_schema_name`;
const CREATE_SCHEMA_NAME_INDEX = `CREATE UNIQUE INDEX IF NOT EXISTS ${SCHEMA_NAME_INDEX} ON ${ORGS_TABLE} (schema_name)`;

/** Every column, in the order `INSERT` and `rowToOrg` use. */
export const ORG_COLUMNS = [
  'slug',
  'storage_mode',
  'database_url',
  'schema_name',
  'active',
  'weight',
  'max_concurrency',
  'max_connections',
  'created_at',
] as const;

/** One kind's SQL. */
export interface Dialect {
  readonly kind: DatabaseKind;
  /** The placeholder of the `n`th parameter (1-based). */
  param(n: number): string;
  /** Starts a transaction that takes the write lock early where the kind needs it. */
  readonly begin: string;
  /** Locks the rows a `SELECT` read inside a transaction (empty on SQLite, which locks the file). */
  readonly forUpdate: string;
  /**
   * Creates `fleet_orgs` and its indexes, adding the schema-name one to an older table;
   * safe when two processes run it at once.
   */
  migrate(conn: RawConnection): Promise<void>;
  /** SQL whose one row, if any, says `fleet_orgs` exists (where unqualified names resolve). */
  readonly findTable: string;
  /** True when `err` is a unique violation (the slug or the schema name). */
  isDuplicateKey(err: unknown): boolean;
}

function errorCode(err: unknown): unknown {
  return (err as { code?: unknown } | null)?.code;
}

// Slugs sort byte-wise on every kind (`COLLATE "C"`, `ascii_bin`, SQLite's BINARY), so a
// keyset page (`slug > after ORDER BY slug`) means the same thing everywhere and matches
// JavaScript's string order. A locale collation would ignore `-` and `_` and break paging.
const POSTGRES_DDL = `
CREATE TABLE IF NOT EXISTS ${ORGS_TABLE} (
  slug text COLLATE "C" PRIMARY KEY,
  storage_mode text NOT NULL CHECK (storage_mode IN ('schema', 'database')),
  database_url text,
  schema_name text,
  active boolean NOT NULL DEFAULT true,
  weight integer NOT NULL DEFAULT 1 CHECK (weight >= 1),
  max_concurrency integer,
  max_connections integer,
  created_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS ${ORGS_TABLE}_active_slug ON ${ORGS_TABLE} (active, slug);
`;

const MYSQL_DDL = `
CREATE TABLE IF NOT EXISTS ${ORGS_TABLE} (
  slug VARCHAR(63) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
  storage_mode VARCHAR(16) CHARACTER SET ascii NOT NULL,
  database_url TEXT NULL,
  schema_name VARCHAR(63) CHARACTER SET ascii NULL,
  active BOOLEAN NOT NULL DEFAULT TRUE,
  weight INT NOT NULL DEFAULT 1,
  max_concurrency INT NULL,
  max_connections INT NULL,
  created_at DATETIME(3) NOT NULL,
  KEY ${ORGS_TABLE}_active_slug (active, slug),
  UNIQUE KEY ${SCHEMA_NAME_INDEX} (schema_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
`;

const SQLITE_DDL = `
CREATE TABLE IF NOT EXISTS ${ORGS_TABLE} (
  slug TEXT NOT NULL PRIMARY KEY,
  storage_mode TEXT NOT NULL CHECK (storage_mode IN ('schema', 'database')),
  database_url TEXT,
  schema_name TEXT,
  active INTEGER NOT NULL DEFAULT 1,
  weight INTEGER NOT NULL DEFAULT 1 CHECK (weight >= 1),
  max_concurrency INTEGER,
  max_connections INTEGER,
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ${ORGS_TABLE}_active_slug ON ${ORGS_TABLE} (active, slug);
`;

const postgres: Dialect = {
  kind: 'postgres',
  param: (n) => `$${n}`,
  begin: 'BEGIN',
  forUpdate: ' FOR UPDATE',
  async migrate(conn) {
    // Two concurrent `CREATE TABLE IF NOT EXISTS` can both pass the check and one then
    // fails on pg_type's unique index; a transaction-scoped advisory lock orders them.
    await conn.query('BEGIN');
    try {
      await conn.query("SELECT pg_advisory_xact_lock(hashtext('tenant-fleet:fleet_orgs'))");
      await conn.exec(POSTGRES_DDL);
      await checkSchemaNamesUnique(conn);
      await conn.query(CREATE_SCHEMA_NAME_INDEX);
      await conn.query('COMMIT');
    } catch (err) {
      await conn.query('ROLLBACK').catch(() => {});
      throw err;
    }
  },
  findTable: `SELECT 1 WHERE to_regclass('${ORGS_TABLE}') IS NOT NULL`,
  // unique_violation
  isDuplicateKey: (err) => errorCode(err) === '23505',
};

const mysql: Dialect = {
  kind: 'mysql',
  param: () => '?',
  begin: 'START TRANSACTION',
  forUpdate: ' FOR UPDATE',
  // MySQL's CREATE TABLE IF NOT EXISTS takes a metadata lock, so concurrent runs are safe;
  // the indexes live inside it because MySQL has no CREATE INDEX IF NOT EXISTS. A table
  // made before the schema-name index existed gets it added here.
  async migrate(conn) {
    await conn.exec(MYSQL_DDL);
    const present = await conn.query(
      `SELECT 1 FROM information_schema.STATISTICS
       WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME = ? LIMIT 1`,
      [ORGS_TABLE, SCHEMA_NAME_INDEX],
    );
    if (present.length > 0) return;
    await checkSchemaNamesUnique(conn);
    try {
      await conn.query(`ALTER TABLE ${ORGS_TABLE} ADD UNIQUE KEY ${SCHEMA_NAME_INDEX} (schema_name)`);
    } catch (err) {
      // ER_DUP_KEYNAME: another process added it meanwhile.
      if (errorCode(err) === 'ER_DUP_KEYNAME') return;
      // A colliding row slipped in since the check: say which.
      if (errorCode(err) === 'ER_DUP_ENTRY') await checkSchemaNamesUnique(conn);
      throw err;
    }
  },
  findTable: `SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '${ORGS_TABLE}'`,
  isDuplicateKey: (err) => errorCode(err) === 'ER_DUP_ENTRY',
};

const sqlite: Dialect = {
  kind: 'sqlite',
  param: () => '?',
  // IMMEDIATE takes the write lock at once, so a read-then-write cannot deadlock with
  // another process doing the same (the busy timeout makes the second one wait).
  begin: 'BEGIN IMMEDIATE',
  forUpdate: '',
  async migrate(conn) {
    // `query` waits for the write lock without blocking the thread; the script then runs
    // while this connection holds it.
    await conn.query('BEGIN IMMEDIATE');
    try {
      await conn.exec(SQLITE_DDL);
      await checkSchemaNamesUnique(conn);
      await conn.query(CREATE_SCHEMA_NAME_INDEX);
      await conn.query('COMMIT');
    } catch (err) {
      await conn.query('ROLLBACK').catch(() => {});
      throw err;
    }
  },
  findTable: `SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '${ORGS_TABLE}'`,
  isDuplicateKey: (err) => {
    const code = errorCode(err);
    return code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
  },
};

/**
 * Throws {@link ValidationError} naming the orgs that share a schema, which a registry
 * made before the unique index existed may hold: the index cannot be built over them, and
 * which org should move is the operator's call.
 */
async function checkSchemaNamesUnique(conn: RawConnection): Promise<void> {
  const rows = await conn.query<{ schema_name: string; slug: string }>(
    `SELECT schema_name, slug FROM ${ORGS_TABLE} WHERE schema_name IN (
       SELECT schema_name FROM ${ORGS_TABLE} WHERE schema_name IS NOT NULL
       GROUP BY schema_name HAVING COUNT(*) > 1)
     ORDER BY schema_name, slug`,
  );
  if (rows.length === 0) return;
  const shared = new Map<string, string[]>();
  for (const row of rows) shared.set(row.schema_name, [...(shared.get(row.schema_name) ?? []), row.slug]);
  const list = [...shared]
    .map(
      ([schema, slugs]) =>
        `schema ${JSON.stringify(schema)} by orgs ${slugs.map((x) => JSON.stringify(x)).join(', ')}`,
    )
    .join('; ');
  throw new ValidationError(
    'schemaName',
    `Expected every org to have a schema of its own before ${SCHEMA_NAME_INDEX} is created, got ${list}: give all but one of each another schemaName (registry.update) and run migrate() again`,
  );
}

/** Runs `fn` in a transaction on `conn`, begun the dialect's way; rolled back if it throws. */
export async function inTransaction<T>(
  dialect: Dialect,
  conn: RawConnection,
  fn: () => Promise<T>,
): Promise<T> {
  await conn.query(dialect.begin);
  try {
    const result = await fn();
    await conn.query('COMMIT');
    return result;
  } catch (err) {
    await conn.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/** The SQL of one kind. */
export function dialectFor(kind: DatabaseKind): Dialect {
  switch (kind) {
    case 'postgres':
      return postgres;
    case 'mysql':
      return mysql;
    case 'sqlite':
      return sqlite;
  }
}

function toBoolean(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  // MySQL BOOLEAN is TINYINT(1) and SQLite has no booleans: both come back as 0/1.
  return Number(value) !== 0;
}

function toNullableInteger(value: unknown): number | null {
  return value === null || value === undefined ? null : Number(value);
}

function toDate(value: unknown): Date {
  // SQLite stores the ISO string the registry wrote; Postgres and MySQL return Dates.
  return value instanceof Date ? new Date(value.getTime()) : new Date(String(value));
}

/** An `Org` from a `fleet_orgs` row of any kind; the same values everywhere. */
export function rowToOrg(row: Row): Org {
  return Object.freeze({
    slug: String(row.slug),
    storageMode: String(row.storage_mode) as StorageMode,
    databaseUrl: row.database_url == null ? null : String(row.database_url),
    schemaName: row.schema_name == null ? null : String(row.schema_name),
    active: toBoolean(row.active),
    weight: Number(row.weight),
    maxConcurrency: toNullableInteger(row.max_concurrency),
    maxConnections: toNullableInteger(row.max_connections),
    createdAt: toDate(row.created_at),
  });
}

/** The parameter values of an org, in {@link ORG_COLUMNS} order. */
export function orgToParams(org: Org): unknown[] {
  return [
    org.slug,
    org.storageMode,
    org.databaseUrl,
    org.schemaName,
    org.active,
    org.weight,
    org.maxConcurrency,
    org.maxConnections,
    org.createdAt,
  ];
}

/** Quotes a Postgres identifier (`"a""b"`). Callers validate names first; this is the second line. */
export function quotePgIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Quotes a MySQL identifier (`` `a``b` ``). */
export function quoteMysqlIdent(name: string): string {
  return `\`${name.replaceAll('`', '``')}\``;
}
