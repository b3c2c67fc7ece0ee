/**
 * Options of the pg-boss engine: one input type, one resolved type, one resolver with
 * the defaults in one object.
 */
import { ConfigError, describe } from '../../reporting/errors.js';
import { durationOption, integerOption } from '../../validate.js';

/** Options of {@link PgBossEngine}. */
export interface PgBossEngineOptions {
  /** A `postgres://` (or `postgresql://`) URL of the database that holds the queue. */
  database: string;
  /**
   * The pg-boss schema: pg-boss creates it (or migrates it) on first use, and the
   * engine adds its own tables and columns beside pg-boss's. @default 'pgboss'
   */
  schema?: string;
  /** Most pooled connections the engine opens (one more is opened for LISTEN). @default 10 */
  maxConnections?: number;
  /** `application_name` of the engine's connections, as `pg_stat_activity` shows it. @default 'tenant-fleet' */
  applicationName?: string;
  /** Times a job may lose its lock and be put back before it is failed instead. @default 1 */
  maxStalledCount?: number;
  /** Completed jobs whose rows are kept per partition (counts are always kept). @default 100 */
  keepCompleted?: number;
  /** Failed jobs whose rows (with their error) are kept per partition. @default 1000 */
  keepFailed?: number;
  /** Largest `data` accepted, in bytes of JSON. @default 524288 */
  maxDataBytes?: number;
  /** Deadline of `close()`, after which connections are dropped. @default 5000 */
  closeTimeoutMs?: number;
}

/** {@link PgBossEngineOptions} with every default applied. */
export type ResolvedPgBossEngineOptions = Required<PgBossEngineOptions>;

const DEFAULTS = {
  schema: 'pgboss',
  maxConnections: 10,
  applicationName: 'tenant-fleet',
  maxStalledCount: 1,
  keepCompleted: 100,
  keepFailed: 1000,
  maxDataBytes: 512 * 1024,
  closeTimeoutMs: 5000,
} satisfies Omit<ResolvedPgBossEngineOptions, 'database'>;

// A pool past 1,000 connections is past what a Postgres server accepts; a job put back
// more than 1,000 times is never going to finish; a million kept rows per partition is
// past what anyone reads. `data` has the same bound as on the other engines, so a fleet
// can switch engines without a job becoming unstorable.
const SIZES = {
  maxConnections: [1, 1_000],
  maxStalledCount: [0, 1_000],
  keepCompleted: [1, 1_000_000],
  keepFailed: [1, 1_000_000],
  maxDataBytes: [1, 512 * 1024 * 1024],
} as const;

// Lower case so the schema needs no quoting; short enough that `fleet_<schema>` (the
// NOTIFY channel) stays within Postgres' 63-byte identifiers.
const SCHEMA = /^[a-z_][a-z0-9_]{0,49}$/;

/** Applies defaults and checks every option; throws `ConfigError`. */
export function resolvePgBossEngineOptions(options: PgBossEngineOptions): ResolvedPgBossEngineOptions {
  if (typeof options !== 'object' || options === null)
    throw new ConfigError('options', `Expected an options object, got ${describe(options)}`);
  const resolved = { ...DEFAULTS, ...options };
  if (typeof resolved.database !== 'string' || !/^postgres(ql)?:\/\//.test(resolved.database))
    throw new ConfigError(
      'database',
      typeof resolved.database === 'string'
        ? 'Expected `database` to be a postgres:// or postgresql:// URL, got another string'
        : `Expected \`database\` to be a postgres:// URL, got ${describe(resolved.database)}`,
    );
  if (typeof resolved.schema !== 'string' || !SCHEMA.test(resolved.schema))
    throw new ConfigError(
      'schema',
      `Expected \`schema\` to be 1 to 50 lower-case letters, digits or _ (not starting with a digit), got ${describe(resolved.schema)}`,
    );
  if (typeof resolved.applicationName !== 'string' || !/^[\x20-\x7e]{1,63}$/.test(resolved.applicationName))
    throw new ConfigError(
      'applicationName',
      `Expected \`applicationName\` to be 1 to 63 printable ASCII characters, got ${describe(resolved.applicationName)}`,
    );
  for (const [field, [min, max]] of Object.entries(SIZES))
    integerOption(field, resolved[field as keyof typeof SIZES], min, max);
  durationOption('closeTimeoutMs', resolved.closeTimeoutMs, 0);
  return resolved;
}
