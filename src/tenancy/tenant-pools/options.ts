/**
 * The options of `TenantPools.open`: the input type, the resolved type, the defaults in
 * one object, and the one function that validates and fills them in.
 */
import { ConfigError, describe } from '../../reporting/errors.js';
import { type Logger, silentLogger } from '../../reporting/logger.js';
import { durationOption, integerOption } from '../../validate.js';
import {
  type FleetBudgetOptions,
  type ResolvedFleetBudgetOptions,
  resolveFleetBudgetOptions,
} from '../pool/fleet-budget/options.js';
import type { OrgRegistry } from '../registry/org-registry.js';
import type { SecretsResolver } from '../secrets.js';

/** Options of `TenantPools.open`. */
export interface TenantPoolsOptions {
  /**
   * Where the tenants are registered: an open {@link OrgRegistry} (the caller keeps owning
   * it), or its URL (TenantPools opens it, and closes it on `close()`).
   */
  registry: OrgRegistry | string;
  /**
   * Resolves an org's `databaseUrl` reference when one of its connections is opened.
   * @default the registry's resolver (`env://`, `file://`, else literal)
   */
  secrets?: SecretsResolver;
  /**
   * The global budget: connections open at once over every tenant pool and the shared
   * schema-mode pool, never exceeded. Count it per process against the server's
   * `max_connections`.
   * @default 50
   */
  maxConnections?: number;
  /** Database-mode tenant pools kept in memory; the least recently used idle one goes first. @default 64 */
  maxCachedPools?: number;
  /**
   * Connections one tenant's pool may hold; an org's own `maxConnections` overrides it.
   * @default 4 (or `maxConnections` when that is smaller)
   */
  perTenantMaxConnections?: number;
  /** Connections a pool keeps open once it is used or prewarmed, idle or not. @default 0 */
  perTenantMinConnections?: number;
  /**
   * Connections of the pool all schema-mode tenants share, inside the budget.
   * @default 10 (or `maxConnections` when that is smaller)
   */
  schemaPoolMaxConnections?: number;
  /** How long `acquire` waits for a connection before `AcquireTimeoutError`. @default 30_000 */
  acquireTimeoutMs?: number;
  /** An idle connection is closed after this long (down to the pool's minimum). @default 600_000 */
  idleTimeoutMs?: number;
  /** A connection is closed and replaced once this old; its replacement re-resolves the secret. @default 1_800_000 */
  maxLifetimeMs?: number;
  /** Opening one connection gives up after this long. @default 10_000 */
  connectTimeoutMs?: number;
  /** Connect failures in a row after which a tenant fails fast with `TenantUnavailableError`. @default 5 */
  failureThreshold?: number;
  /** How long a tenant fails fast once `failureThreshold` is reached. @default 30_000 */
  failureCooldownMs?: number;
  /** Run `prewarm()` inside `open()`. @default false */
  prewarm?: boolean;
  /** Tenants `prewarm()` warms at once. @default 4 */
  prewarmConcurrency?: number;
  /** How long `close()` waits for lent connections to be released before closing them anyway. @default 10_000 */
  closeTimeoutMs?: number;
  /** Where pool events worth a line are logged (a pino logger). @default no logging */
  logger?: Logger;
  /**
   * One connection budget per database server over every process of the fleet, kept as
   * leases in Redis (see docs/tenancy.md). @default none: each process counts only its own
   */
  fleetBudget?: FleetBudgetOptions;
}

/** {@link TenantPoolsOptions} validated, with every default filled in. */
export interface ResolvedTenantPoolsOptions {
  registry: OrgRegistry | string;
  secrets: SecretsResolver | undefined;
  maxConnections: number;
  maxCachedPools: number;
  perTenantMaxConnections: number;
  perTenantMinConnections: number;
  schemaPoolMaxConnections: number;
  acquireTimeoutMs: number;
  idleTimeoutMs: number;
  maxLifetimeMs: number;
  connectTimeoutMs: number;
  failureThreshold: number;
  failureCooldownMs: number;
  prewarm: boolean;
  prewarmConcurrency: number;
  closeTimeoutMs: number;
  logger: Logger;
  fleetBudget: ResolvedFleetBudgetOptions | undefined;
}

const DEFAULTS = {
  maxConnections: 50,
  maxCachedPools: 64,
  perTenantMaxConnections: 4,
  perTenantMinConnections: 0,
  schemaPoolMaxConnections: 10,
  acquireTimeoutMs: 30_000,
  idleTimeoutMs: 600_000,
  maxLifetimeMs: 1_800_000,
  connectTimeoutMs: 10_000,
  failureThreshold: 5,
  failureCooldownMs: 30_000,
  prewarm: false,
  prewarmConcurrency: 4,
  closeTimeoutMs: 10_000,
} satisfies Partial<ResolvedTenantPoolsOptions>;

// Upper bounds of the sizes. No server takes 10,000 connections from one process
// (Postgres' max_connections is a few hundred to a few thousand; every one is a backend
// process), so a budget above that is a typo; a pool or the schema-mode pool lives inside
// the budget. 10,000 cached pools is far more tenants than one process can keep a
// connection open to; prewarming more than 1,000 tenants at once would only queue on the
// budget; a failure threshold past 1,000 refused connections in a row never trips.
/** The largest connection budget (`maxConnections`) TenantPools takes. */
export const MAX_CONNECTIONS = 10_000;
/** The most database-mode pools (`maxCachedPools`) TenantPools caches. */
export const MAX_CACHED_POOLS = 10_000;
const MAX_PREWARM_CONCURRENCY = 1_000;
const MAX_FAILURE_THRESHOLD = 1_000;

/** Validates {@link TenantPoolsOptions} and fills in the defaults; {@link ConfigError} names the bad option. */
export function resolveTenantPoolsOptions(options: TenantPoolsOptions): ResolvedTenantPoolsOptions {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('options', `Expected a TenantPools options object, got ${describe(options)}`);
  }
  const { registry } = options;
  const looksLikeRegistry =
    typeof registry === 'object' &&
    registry !== null &&
    typeof (registry as Partial<OrgRegistry>).find === 'function' &&
    typeof (registry as Partial<OrgRegistry>).list === 'function';
  if (typeof registry !== 'string' && !looksLikeRegistry) {
    throw new ConfigError(
      'registry',
      `Expected \`registry\` to be an OrgRegistry or its URL, got ${describe(registry)}`,
    );
  }
  const secrets = options.secrets;
  if (secrets !== undefined && typeof (secrets as Partial<SecretsResolver>)?.resolve !== 'function') {
    throw new ConfigError(
      'secrets',
      `Expected \`secrets\` to be a SecretsResolver (an object with resolve(ref)), got ${describe(secrets)}`,
    );
  }
  const maxConnections = integerOption(
    'maxConnections',
    options.maxConnections ?? DEFAULTS.maxConnections,
    1,
    MAX_CONNECTIONS,
  );
  const perTenantMaxConnections = integerOption(
    'perTenantMaxConnections',
    options.perTenantMaxConnections ?? Math.min(DEFAULTS.perTenantMaxConnections, maxConnections),
    1,
    MAX_CONNECTIONS,
  );
  const perTenantMinConnections = integerOption(
    'perTenantMinConnections',
    options.perTenantMinConnections ?? DEFAULTS.perTenantMinConnections,
    0,
    MAX_CONNECTIONS,
  );
  if (perTenantMaxConnections > maxConnections) {
    throw new ConfigError(
      'perTenantMaxConnections',
      `Expected \`perTenantMaxConnections\` ≤ \`maxConnections\` (${maxConnections}), got ${perTenantMaxConnections}`,
    );
  }
  if (perTenantMinConnections > perTenantMaxConnections) {
    throw new ConfigError(
      'perTenantMinConnections',
      `Expected \`perTenantMinConnections\` ≤ \`perTenantMaxConnections\` (${perTenantMaxConnections}), got ${perTenantMinConnections}`,
    );
  }
  const schemaPoolMaxConnections = integerOption(
    'schemaPoolMaxConnections',
    options.schemaPoolMaxConnections ?? Math.min(DEFAULTS.schemaPoolMaxConnections, maxConnections),
    1,
    MAX_CONNECTIONS,
  );
  if (schemaPoolMaxConnections > maxConnections) {
    throw new ConfigError(
      'schemaPoolMaxConnections',
      `Expected \`schemaPoolMaxConnections\` ≤ \`maxConnections\` (${maxConnections}), got ${schemaPoolMaxConnections}`,
    );
  }
  const prewarm = options.prewarm ?? DEFAULTS.prewarm;
  if (typeof prewarm !== 'boolean') {
    throw new ConfigError('prewarm', `Expected \`prewarm\` to be a boolean, got ${describe(prewarm)}`);
  }
  return {
    registry,
    secrets,
    maxConnections,
    maxCachedPools: integerOption(
      'maxCachedPools',
      options.maxCachedPools ?? DEFAULTS.maxCachedPools,
      1,
      MAX_CACHED_POOLS,
    ),
    perTenantMaxConnections,
    perTenantMinConnections,
    schemaPoolMaxConnections,
    acquireTimeoutMs: durationOption(
      'acquireTimeoutMs',
      options.acquireTimeoutMs ?? DEFAULTS.acquireTimeoutMs,
      1,
    ),
    idleTimeoutMs: durationOption('idleTimeoutMs', options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs, 1),
    maxLifetimeMs: durationOption('maxLifetimeMs', options.maxLifetimeMs ?? DEFAULTS.maxLifetimeMs, 1),
    connectTimeoutMs: durationOption(
      'connectTimeoutMs',
      options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      1,
    ),
    failureThreshold: integerOption(
      'failureThreshold',
      options.failureThreshold ?? DEFAULTS.failureThreshold,
      1,
      MAX_FAILURE_THRESHOLD,
    ),
    failureCooldownMs: durationOption(
      'failureCooldownMs',
      options.failureCooldownMs ?? DEFAULTS.failureCooldownMs,
      1,
    ),
    prewarm,
    prewarmConcurrency: integerOption(
      'prewarmConcurrency',
      options.prewarmConcurrency ?? DEFAULTS.prewarmConcurrency,
      1,
      MAX_PREWARM_CONCURRENCY,
    ),
    closeTimeoutMs: durationOption('closeTimeoutMs', options.closeTimeoutMs ?? DEFAULTS.closeTimeoutMs, 0),
    logger: options.logger ?? silentLogger,
    fleetBudget:
      options.fleetBudget === undefined ? undefined : resolveFleetBudgetOptions(options.fleetBudget),
  };
}
