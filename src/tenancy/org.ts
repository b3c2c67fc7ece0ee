import { describe, redactConnectionString, ValidationError } from '../reporting/errors.js';

/**
 * How a tenant's data is kept apart.
 * - `schema`: a Postgres schema inside the registry database, reached through one shared pool.
 * - `database`: a database of its own (Postgres, MySQL or a SQLite file) with a pool of its own.
 */
export type StorageMode = 'schema' | 'database';

/** The storage modes, for validation and CLI help. */
export const STORAGE_MODES: readonly StorageMode[] = ['schema', 'database'];

/** One tenant: a row of the registry's `fleet_orgs` table. */
export interface Org {
  /** Unique, URL-safe name: lower-case letters, digits, `-` and `_`, 1–63 characters. */
  readonly slug: string;
  readonly storageMode: StorageMode;
  /** A secret reference (`env://NAME`, `file:///path` or a literal URL); null in schema mode. */
  readonly databaseUrl: string | null;
  /** The tenant's Postgres schema in schema mode; null in database mode. */
  readonly schemaName: string | null;
  readonly active: boolean;
  /** Fair-share weight, an integer from 1 to 1000. */
  readonly weight: number;
  /** Jobs of this tenant running at once across the fleet (1 to 100,000); null means the queue's default. */
  readonly maxConcurrency: number | null;
  /** This tenant's pool size (1 to 10,000); null means the pools' default. */
  readonly maxConnections: number | null;
  readonly createdAt: Date;
}

/** What `OrgRegistry.add` takes: the slug, and every other field optional. */
export interface OrgInput {
  slug: string;
  /** @default 'schema' */
  storageMode?: StorageMode;
  /** Required in database mode, must be absent in schema mode. */
  databaseUrl?: string | null;
  /** @default the slug with `-` turned to `_` (schema mode only) */
  schemaName?: string | null;
  /** @default true */
  active?: boolean;
  /** @default 1 */
  weight?: number;
  /** @default null */
  maxConcurrency?: number | null;
  /** @default null */
  maxConnections?: number | null;
}

/** What `OrgRegistry.update` takes: any field but the slug and creation time. */
export type OrgPatch = Partial<Omit<OrgInput, 'slug'>>;

/** The longest slug, and Postgres' longest identifier (a schema name derives from it). */
export const MAX_SLUG_LENGTH = 63;
/** The slug rule: starts and ends with a letter or digit, at most {@link MAX_SLUG_LENGTH} characters. */
export const SLUG_PATTERN = /^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$/;
/** A Postgres identifier we are willing to quote: lower case, at most 63 bytes. */
export const SCHEMA_NAME_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;

/** Throws {@link ValidationError} unless `slug` follows {@link SLUG_PATTERN}. */
export function validateSlug(slug: unknown): string {
  if (typeof slug !== 'string' || !SLUG_PATTERN.test(slug)) {
    throw new ValidationError(
      'slug',
      `Expected \`slug\` to be 1–63 characters of a-z, 0-9, '-' or '_', starting and ending with a letter or digit, got ${describe(slug)}`,
    );
  }
  return slug;
}

/**
 * Schemas a tenant may never own: Postgres' own (`pg_catalog`, `pg_toast`, `pg_temp_*`;
 * Postgres reserves the whole `pg_` prefix), the SQL standard's `information_schema`, and
 * `public`, where the registry and every role's default objects live. A tenant on one of
 * them would read and write what is not its own.
 */
export function isReservedSchemaName(name: string): boolean {
  return name === 'public' || name === 'information_schema' || name.startsWith('pg_');
}

/** Throws {@link ValidationError} unless `name` is a safe Postgres schema identifier a tenant may own. */
export function validateSchemaName(name: unknown): string {
  if (typeof name !== 'string' || !SCHEMA_NAME_PATTERN.test(name)) {
    throw new ValidationError(
      'schemaName',
      `Expected \`schemaName\` to match ${SCHEMA_NAME_PATTERN} (a lower-case Postgres identifier), got ${describe(name)}`,
    );
  }
  if (isReservedSchemaName(name)) {
    throw new ValidationError(
      'schemaName',
      `Expected a \`schemaName\` of the tenant's own (not public, information_schema or pg_*), got ${JSON.stringify(name)}`,
    );
  }
  return name;
}

/** The schema name a slug gets by default: `-` turned to `_`. */
export function defaultSchemaName(slug: string): string {
  return slug.replaceAll('-', '_');
}

function validateStorageMode(mode: unknown): StorageMode {
  if (!STORAGE_MODES.includes(mode as StorageMode)) {
    throw new ValidationError(
      'storageMode',
      `Expected \`storageMode\` to be one of ${STORAGE_MODES.map((m) => `'${m}'`).join(', ')}, got ${describe(mode)}`,
    );
  }
  return mode as StorageMode;
}

/**
 * The largest value of each number an org carries. All are far below the 32-bit `INT`
 * columns that store them (2³¹ − 1), so a value never reaches the database to fail there.
 * - `weight` is the tenant's turns per round of the fair picker: at 1000, one tenant's
 *   turn already lasts 1000 jobs before any other tenant runs.
 * - `maxConcurrency` caps one tenant's running jobs across the fleet; 100,000 is more
 *   than any fleet runs at once, and well inside the queue's own cap of 1,000,000.
 * - `maxConnections` is one tenant's pool; 10,000 is past what one Postgres or MySQL
 *   server is set up to accept (`max_connections`).
 */
export const ORG_LIMITS = { weight: 1000, maxConcurrency: 100_000, maxConnections: 10_000 } as const;

function validatePositiveInteger(
  field: keyof typeof ORG_LIMITS,
  value: unknown,
  nullable: boolean,
): number | null {
  if (value === null && nullable) return null;
  const max = ORG_LIMITS[field];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new ValidationError(
      field,
      `Expected \`${field}\` to be an integer from 1 to ${max}${nullable ? ' or null' : ''}, got ${describe(value)}`,
    );
  }
  return value;
}

function validateDatabaseUrl(mode: StorageMode, url: unknown): string | null {
  if (mode === 'schema') {
    if (url !== undefined && url !== null) {
      throw new ValidationError(
        'databaseUrl',
        'Expected no `databaseUrl` in schema mode (the tenant lives in the registry database), got one',
      );
    }
    return null;
  }
  if (typeof url !== 'string' || url.trim() === '') {
    throw new ValidationError(
      'databaseUrl',
      `Expected \`databaseUrl\` (a URL or a secret reference such as env://NAME) in database mode, got ${url == null ? 'none' : describe(url)}`,
    );
  }
  return url;
}

// A slug may start with a digit, a schema name may not: when the default derived from the
// slug is what fails, say so rather than blame a schemaName the caller never gave.
function validateOrgSchemaName(slug: string, schemaName: string | null | undefined): string {
  if (schemaName != null) return validateSchemaName(schemaName);
  const derived = defaultSchemaName(slug);
  if (!SCHEMA_NAME_PATTERN.test(derived)) {
    throw new ValidationError(
      'schemaName',
      `Expected a \`schemaName\` for slug ${JSON.stringify(slug)} in schema mode (its default, ${JSON.stringify(derived)}, must start with a letter or '_'), got none`,
    );
  }
  if (isReservedSchemaName(derived)) {
    throw new ValidationError(
      'schemaName',
      `Expected a \`schemaName\` for slug ${JSON.stringify(slug)} in schema mode (its default, ${JSON.stringify(derived)}, is reserved: public, information_schema and pg_* are not a tenant's), got none`,
    );
  }
  return derived;
}

/** The fields of an org as validated, before the registry stamps `createdAt`. */
export type ValidatedOrg = Omit<Org, 'createdAt'>;

/**
 * Validates an {@link OrgInput} and fills in the defaults. Throws {@link ValidationError}
 * naming the first field that breaks a rule.
 */
export function validateOrgInput(input: OrgInput): ValidatedOrg {
  if (typeof input !== 'object' || input === null) {
    throw new ValidationError('org', `Expected an org object, got ${describe(input)}`);
  }
  const slug = validateSlug(input.slug);
  const storageMode = validateStorageMode(input.storageMode ?? 'schema');
  const databaseUrl = validateDatabaseUrl(storageMode, input.databaseUrl);
  const schemaName = storageMode === 'schema' ? validateOrgSchemaName(slug, input.schemaName) : null;
  if (storageMode === 'database' && input.schemaName != null) {
    throw new ValidationError(
      'schemaName',
      `Expected no \`schemaName\` in database mode, got ${describe(input.schemaName)}`,
    );
  }
  const active = input.active ?? true;
  if (typeof active !== 'boolean') {
    throw new ValidationError('active', `Expected \`active\` to be a boolean, got ${describe(active)}`);
  }
  return {
    slug,
    storageMode,
    databaseUrl,
    schemaName,
    active,
    weight: validatePositiveInteger('weight', input.weight ?? 1, false) as number,
    maxConcurrency: validatePositiveInteger('maxConcurrency', input.maxConcurrency ?? null, true),
    maxConnections: validatePositiveInteger('maxConnections', input.maxConnections ?? null, true),
  };
}

/** Applies a patch to an existing org and validates the result as a whole. */
export function applyOrgPatch(org: Org, patch: OrgPatch): ValidatedOrg {
  if ('slug' in patch) {
    throw new ValidationError('slug', 'Expected a patch without `slug` (a slug never changes), got one');
  }
  const storageMode = patch.storageMode ?? org.storageMode;
  const modeChanged = storageMode !== org.storageMode;
  return validateOrgInput({
    slug: org.slug,
    storageMode,
    databaseUrl: 'databaseUrl' in patch ? patch.databaseUrl : modeChanged ? undefined : org.databaseUrl,
    schemaName: 'schemaName' in patch ? patch.schemaName : modeChanged ? undefined : org.schemaName,
    active: patch.active ?? org.active,
    weight: patch.weight ?? org.weight,
    maxConcurrency: 'maxConcurrency' in patch ? patch.maxConcurrency : org.maxConcurrency,
    maxConnections: 'maxConnections' in patch ? patch.maxConnections : org.maxConnections,
  });
}

/**
 * An org as it may be shown in a log, on the terminal or on the dashboard: every
 * credential of the database URL redacted, read the way its driver reads it.
 */
export function publicOrg(org: Org): Org {
  return { ...org, databaseUrl: org.databaseUrl === null ? null : redactConnectionString(org.databaseUrl) };
}
