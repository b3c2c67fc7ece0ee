/**
 * Every error tenant-fleet throws extends {@link FleetError} and carries a stable
 * string `code`. Callers branch on the class or the code, never on message text.
 *
 * Messages say what was expected and what was got, and never contain a secret: every
 * message goes through {@link redactUrl} in the {@link FleetError} constructor, so a
 * connection string quoted in one loses its password whatever the caller did.
 */
import { redactConnectionString, redactUrl } from './redact.js';

export { redactConnectionString, redactUrl } from './redact.js';

/** The stable codes of every {@link FleetError} subclass. */
export type FleetErrorCode =
  | 'VALIDATION'
  | 'UNKNOWN_TENANT'
  | 'TENANT_INACTIVE'
  | 'ACQUIRE_TIMEOUT'
  | 'POOL_CAPACITY'
  | 'TENANT_UNAVAILABLE'
  | 'SECRET_RESOLUTION'
  | 'CONFIG'
  | 'CLOSED'
  | 'TENANT_CONNECTION'
  | 'MIGRATION_FAILED'
  | 'DATABASE_UNAVAILABLE'
  | 'FAN_OUT_FAILED'
  | 'SERVICE_UNREACHABLE'
  | 'UNSUPPORTED'
  | 'FLEET_BUDGET';

/** Base class of every error tenant-fleet throws. */
export class FleetError extends Error {
  /** Stable, machine-readable code; see {@link FleetErrorCode}. */
  readonly code: FleetErrorCode;

  constructor(code: FleetErrorCode, message: string, options?: { cause?: unknown }) {
    super(redactUrl(message), options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Input that breaks a rule: a bad slug, weight, schema name, job payload… */
export class ValidationError extends FleetError {
  /** The field that was rejected, e.g. `slug` or `weight`. */
  readonly field: string;

  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super('VALIDATION', message, options);
    this.field = field;
  }
}

/** No org with this slug exists in the registry. */
export class UnknownTenantError extends FleetError {
  readonly slug: string;

  constructor(slug: string) {
    super('UNKNOWN_TENANT', `Expected a registered tenant, got unknown slug ${JSON.stringify(slug)}`);
    this.slug = slug;
  }
}

/** The org exists but has been deactivated. */
export class TenantInactiveError extends FleetError {
  readonly slug: string;

  constructor(slug: string) {
    super('TENANT_INACTIVE', `Expected an active tenant, got deactivated tenant ${JSON.stringify(slug)}`);
    this.slug = slug;
  }
}

/** A connection could not be lent within `acquireTimeoutMs`. */
export class AcquireTimeoutError extends FleetError {
  readonly slug: string;
  readonly timeoutMs: number;

  constructor(slug: string, timeoutMs: number, detail = '') {
    super(
      'ACQUIRE_TIMEOUT',
      `Expected a connection for tenant ${JSON.stringify(slug)} within ${timeoutMs} ms, got none${detail ? ` (${detail})` : ''}`,
    );
    this.slug = slug;
    this.timeoutMs = timeoutMs;
  }
}

/** Every cached pool is busy, so no pool could be built for a new tenant in time. */
export class PoolCapacityError extends FleetError {
  readonly slug: string;
  readonly maxCachedPools: number;

  constructor(slug: string, maxCachedPools: number, timeoutMs: number) {
    super(
      'POOL_CAPACITY',
      `Expected a free place among ${maxCachedPools} cached pools for tenant ${JSON.stringify(slug)} within ${timeoutMs} ms, got none: every cached pool is in use`,
    );
    this.slug = slug;
    this.maxCachedPools = maxCachedPools;
  }
}

/** The tenant's database refused connections repeatedly; it fails fast until `retryAt`. */
export class TenantUnavailableError extends FleetError {
  readonly slug: string;
  /** Epoch milliseconds when the next connection attempt is allowed. */
  readonly retryAt: number;

  constructor(slug: string, failures: number, retryAt: number, options?: { cause?: unknown }) {
    super(
      'TENANT_UNAVAILABLE',
      `Expected tenant ${JSON.stringify(slug)}'s database to accept connections, got ${failures} failures in a row; failing fast until ${new Date(retryAt).toISOString()}`,
      options,
    );
    this.slug = slug;
    this.retryAt = retryAt;
  }
}

/** A secret reference (`env://`, `file://` …) could not be resolved. */
export class SecretResolutionError extends FleetError {
  /** The reference with any password redacted. */
  readonly reference: string;

  constructor(reference: string, message: string, options?: { cause?: unknown }) {
    super('SECRET_RESOLUTION', message, options);
    this.reference = redactConnectionString(reference);
  }
}

/** An option or configuration value is out of range or of the wrong type. */
export class ConfigError extends FleetError {
  /** The option that was rejected, e.g. `maxConnections`. */
  readonly option: string;

  constructor(option: string, message: string, options?: { cause?: unknown }) {
    super('CONFIG', message, options);
    this.option = option;
  }
}

/** An operation this engine or component cannot do (a write from bull-board on the in-memory engine). */
export class UnsupportedError extends FleetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNSUPPORTED', message, options);
  }
}

/**
 * No lease of the fleet-wide connection budget could be had for a database server: the
 * budget is full (and the caller would not wait, or waited its time), or the store that
 * keeps the budget did not answer (fail closed: no connection is opened without a lease).
 */
export class FleetBudgetError extends FleetError {
  /** `host:port` of the database server; never a credential. */
  readonly server: string;
  /** `full`: every lease is held; `unreachable`: the budget's lease store did not answer. */
  readonly reason: 'full' | 'unreachable';

  constructor(server: string, reason: 'full' | 'unreachable', options?: { cause?: unknown }) {
    const got =
      reason === 'full'
        ? 'every lease of its fleet budget held'
        : "no answer from the fleet budget's lease store (Redis or Postgres)";
    super('FLEET_BUDGET', `Expected a connection lease for database server ${server}, got ${got}`, options);
    this.server = server;
    this.reason = reason;
  }
}

/** The resource was used after `close()`. */
export class ClosedError extends FleetError {
  constructor(what: string, options?: { cause?: unknown }) {
    super('CLOSED', `Expected an open ${what}, got one that is closed`, options);
  }
}

/**
 * A tenant's database could not be connected to (refused, unreachable, timed out, bad
 * credentials). The driver's error, scrubbed of any password, is the `cause`.
 */
export class TenantConnectionError extends FleetError {
  /** The tenant, or null for the pool schema-mode tenants share. */
  readonly slug: string | null;
  /** `host:port` of the database (a file path for SQLite); never a credential. */
  readonly address: string;

  constructor(slug: string | null, address: string, options: { cause: unknown }) {
    const cause = options.cause as { code?: unknown; message?: unknown } | undefined;
    const code = typeof cause?.code === 'string' ? cause.code : undefined;
    const message =
      typeof cause?.message === 'string' && cause.message ? redactUrl(cause.message) : undefined;
    // The driver's message mostly names its code already (`connect ECONNREFUSED 127.0.0.1:5433`).
    const why =
      message === undefined
        ? (code ?? 'an error')
        : code === undefined || message.includes(code)
          ? message
          : `${code}: ${message}`;
    const who =
      slug === null ? 'the shared schema-mode database' : `tenant ${JSON.stringify(slug)}'s database`;
    super('TENANT_CONNECTION', `Expected ${who} at ${address} to accept a connection, got ${why}`, options);
    this.slug = slug;
    this.address = address;
  }
}

/**
 * A database of tenant-fleet's own (the registry's, the schedule store's) could not be
 * reached: a bad host, a refused connection, a database that does not exist, bad
 * credentials. The driver's error is the `cause`; the message names the URL redacted.
 */
export class DatabaseConnectionError extends FleetError {
  /** What the connection was for: `registry`, `schedule store`. */
  readonly what: string;

  constructor(what: string, url: string, cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    super(
      'DATABASE_UNAVAILABLE',
      `Expected the ${what} database ${redactUrl(url)} to accept a connection, got ${redactUrl(detail)}`,
      { cause },
    );
    this.what = what;
  }
}

/** One fan-out of a schedule's tick failed; the error that stopped it is the `cause`. */
export class FanOutError extends FleetError {
  readonly scheduleId: string;
  readonly tick: Date;

  constructor(scheduleId: string, tick: Date, cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    super(
      'FAN_OUT_FAILED',
      `Expected schedule ${JSON.stringify(scheduleId)} to fan out its tick ${tick.toISOString()}, got ${redactUrl(detail)}`,
      { cause },
    );
    this.scheduleId = scheduleId;
    this.tick = tick;
  }
}

/** Describes a value for an error message: its JSON form when short, else its type. */
export function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  if (typeof value === 'string')
    return value.length > 80 ? `a string of ${value.length} characters` : JSON.stringify(value);
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return typeof value;
}
