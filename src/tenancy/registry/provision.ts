/**
 * Creating a tenant's storage: its schema on the registry database, or its own database
 * (Postgres, MySQL) or SQLite file. Every step is idempotent: provisioning twice, or from
 * two processes at once, leaves one schema or database and no error.
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  ConfigError,
  describe,
  FleetError,
  redactUrl,
  TenantConnectionError,
} from '../../reporting/errors.js';
import type { DatabaseKind } from '../drivers/driver.js';
import { addressOf, databaseKindOf, sqlitePath } from '../drivers/driver.js';
import { type ConnectOptions, connect, type RawConnection } from '../drivers/index.js';
import { validateSchemaName } from '../org.js';
import { quoteMysqlIdent, quotePgIdent } from './sql-dialect.js';

/** What `OrgRegistry.provision` did. */
export interface ProvisionResult {
  readonly slug: string;
  readonly storageMode: 'schema' | 'database';
  /** The tenant's database kind. */
  readonly kind: DatabaseKind;
  /** The schema, database or SQLite file that was provisioned (never a URL). */
  readonly target: string;
  /** False when it existed already (provisioning is idempotent). */
  readonly created: boolean;
}

/** `CREATE SCHEMA IF NOT EXISTS "<schema>"` on the registry's own Postgres connection. */
export async function provisionSchema(conn: RawConnection, schemaName: string): Promise<boolean> {
  const schema = validateSchemaName(schemaName);
  const existing = await conn.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
  if (existing.length > 0) return false;
  try {
    // No IF NOT EXISTS: when two processes race past the check above, exactly one
    // must learn it created the schema; the other gets duplicate_schema (or, mid-race,
    // pg_namespace's unique index) and reports it as existing.
    await conn.query(`CREATE SCHEMA ${quotePgIdent(schema)}`);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code !== '42P06' && code !== '23505') throw err;
    return false;
  }
  return true;
}

// The database a server URL names, e.g. `tenant_acme` in postgres://u@h/tenant_acme.
function databaseName(url: string, kind: DatabaseKind): string {
  let name: string;
  try {
    name = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
  } catch {
    throw new ConfigError(
      'databaseUrl',
      `Expected the tenant's ${kind} databaseUrl to be a valid URL, got one that does not parse`,
    );
  }
  if (name === '' || name.includes('/') || name.length > 63) {
    throw new ConfigError(
      'databaseUrl',
      `Expected the tenant's ${kind} databaseUrl to name a database (1–63 characters, no '/'), got ${describe(name)}`,
    );
  }
  return name;
}

function withPath(url: string, path: string): string {
  const parsed = new URL(url);
  parsed.pathname = path;
  return parsed.toString();
}

/** Runs `fn` on a connection to `url`; failing to connect is the tenant's TenantConnectionError. */
async function withConnection<T>(
  slug: string,
  url: string,
  options: ConnectOptions,
  fn: (conn: RawConnection) => Promise<T>,
): Promise<T> {
  const conn = await connect(url, options).catch((err: unknown) => {
    throw err instanceof FleetError ? err : new TenantConnectionError(slug, addressOf(url), { cause: err });
  });
  try {
    return await fn(conn);
  } finally {
    await conn.close();
  }
}

async function provisionPostgresDatabase(
  slug: string,
  url: string,
  options: ConnectOptions,
): Promise<[string, boolean]> {
  const name = databaseName(url, 'postgres');
  // CREATE DATABASE cannot run inside the database it creates: use the maintenance db.
  return withConnection(slug, withPath(url, '/postgres'), options, async (conn) => {
    const existing = await conn.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (existing.length > 0) return [name, false];
    try {
      await conn.query(`CREATE DATABASE ${quotePgIdent(name)}`);
    } catch (err) {
      // duplicate_database, or the unique index when two processes race.
      const code = (err as { code?: string }).code;
      if (code !== '42P04' && code !== '23505') throw err;
      return [name, false];
    }
    return [name, true];
  });
}

async function provisionMysqlDatabase(
  slug: string,
  url: string,
  options: ConnectOptions,
): Promise<[string, boolean]> {
  const name = databaseName(url, 'mysql');
  return withConnection(slug, withPath(url, ''), options, async (conn) => {
    const existing = await conn.query('SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [
      name,
    ]);
    if (existing.length > 0) return [name, false];
    try {
      await conn.query(`CREATE DATABASE ${quoteMysqlIdent(name)}`);
    } catch (err) {
      // ER_DB_CREATE_EXISTS: another process created it since the check.
      if ((err as { code?: string }).code !== 'ER_DB_CREATE_EXISTS') throw err;
      return [name, false];
    }
    return [name, true];
  });
}

async function provisionSqliteFile(
  slug: string,
  url: string,
  options: ConnectOptions,
): Promise<[string, boolean]> {
  const path = sqlitePath(url);
  if (path === ':memory:') {
    throw new ConfigError('databaseUrl', 'Expected a SQLite file path for a tenant database, got ":memory:"');
  }
  mkdirSync(dirname(path), { recursive: true });
  let created = true;
  try {
    // An exclusive create, so of two racing provisioners exactly one reports `created`.
    closeSync(openSync(path, 'wx'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    created = false;
  }
  // Opening switches the (empty or existing) file to WAL.
  await withConnection(slug, url, options, async () => {});
  return [path, created];
}

/**
 * Creates the database a resolved tenant URL points at, on that URL's server. Throws
 * {@link ConfigError} for an unsupported scheme before connecting anywhere, and
 * {@link TenantConnectionError} naming the tenant and the server when it cannot connect.
 */
export async function provisionDatabase(
  slug: string,
  resolvedUrl: string,
  options: ConnectOptions,
): Promise<{ kind: DatabaseKind; target: string; created: boolean }> {
  let kind: DatabaseKind;
  try {
    kind = databaseKindOf(resolvedUrl);
  } catch (err) {
    // databaseKindOf names the scheme only; restate it for the org field without the URL.
    throw new ConfigError('databaseUrl', redactUrl((err as Error).message), { cause: err });
  }
  const [target, created] =
    kind === 'postgres'
      ? await provisionPostgresDatabase(slug, resolvedUrl, options)
      : kind === 'mysql'
        ? await provisionMysqlDatabase(slug, resolvedUrl, options)
        : await provisionSqliteFile(slug, resolvedUrl, options);
  return { kind, target, created };
}
