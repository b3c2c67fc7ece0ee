/**
 * The options of the fleet-wide connection budget (`TenantPools.open({ fleetBudget })`):
 * the input type, the resolved type, and the one function that validates them.
 */
import type { Redis } from 'ioredis';
import type { Pool } from 'pg';
import { ConfigError, describe } from '../../../reporting/errors.js';
import { integerOption } from '../../../validate.js';

/** The fleet-wide connection budget: how many connections every process together may hold per server. */
export interface FleetBudgetOptions {
  /**
   * Keep the leases in Redis: a `redis://` URL, or an ioredis instance shared with the
   * caller (not closed by TenantPools; it must not use ioredis' `keyPrefix`). Exactly one
   * of `redis` and `postgres`.
   */
  redis?: string | Redis;
  /**
   * Keep the leases in Postgres, for a fleet without Redis: a `postgres://` URL, or a
   * `pg.Pool` shared with the caller (not closed by TenantPools). The tables and functions
   * live in a schema named `prefix`, created on first use. Exactly one of `redis` and
   * `postgres`.
   */
  postgres?: string | Pool;
  /** Connections per database server over the whole fleet, keyed `host:port` as in the tenants' URLs. */
  perServer?: Record<string, number>;
  /** The limit of a server not in `perServer`; without it such a server takes no lease. */
  defaultPerServer?: number;
  /**
   * How long a lease lives unless renewed. Processes renew theirs every third of it, so a
   * crashed process's leases lapse within this long. @default 10_000
   */
  leaseTtlMs?: number;
  /**
   * Shared by every process of one fleet: in Redis the key and channel prefix; in Postgres
   * the schema's name and the LISTEN channel (at most 63 characters there).
   * @default 'tenant-fleet:budget'
   */
  prefix?: string;
}

/** Where the leases are kept, as the options name it. */
export type LeaseStoreOptions =
  | { kind: 'redis'; redis: string | Redis }
  | { kind: 'postgres'; postgres: string | Pool };

/** {@link FleetBudgetOptions} validated, defaults filled in. */
export interface ResolvedFleetBudgetOptions {
  store: LeaseStoreOptions;
  perServer: ReadonlyMap<string, number>;
  defaultPerServer: number | undefined;
  leaseTtlMs: number;
  prefix: string;
}

/** The largest fleet-wide limit of one server: far more than any database accepts. */
export const MAX_PER_SERVER = 1_000_000;
/** Shorter leases would have to be renewed more often than one round trip to the store allows for. */
export const MIN_LEASE_TTL_MS = 300;
const MAX_LEASE_TTL_MS = 3_600_000;
const DEFAULT_LEASE_TTL_MS = 10_000;
const DEFAULT_PREFIX = 'tenant-fleet:budget';
// host:port, the host a name, an IPv4 address or a bracketed IPv6 address.
const SERVER = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):\d{1,5}$/;
const PREFIX = /^[A-Za-z0-9:._-]{1,100}$/;
// Postgres truncates longer identifiers (the schema, the channel) to 63 bytes.
const MAX_PG_PREFIX = 63;

/** Validates {@link FleetBudgetOptions}; {@link ConfigError} names the bad field (`fleetBudget.…`). */
export function resolveFleetBudgetOptions(options: unknown): ResolvedFleetBudgetOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new ConfigError(
      'fleetBudget',
      `Expected \`fleetBudget\` to be an object, got ${describe(options)}`,
    );
  }
  const input = options as FleetBudgetOptions;
  const store = resolveStore(input);
  const perServer = new Map<string, number>();
  if (input.perServer !== undefined) {
    if (typeof input.perServer !== 'object' || input.perServer === null || Array.isArray(input.perServer)) {
      throw new ConfigError(
        'fleetBudget.perServer',
        `Expected \`fleetBudget.perServer\` to map host:port to a limit, got ${describe(input.perServer)}`,
      );
    }
    for (const [server, limit] of Object.entries(input.perServer)) {
      if (!SERVER.test(server) || Number(server.slice(server.lastIndexOf(':') + 1)) > 65_535) {
        throw new ConfigError(
          'fleetBudget.perServer',
          `Expected the keys of \`fleetBudget.perServer\` to be host:port, got ${describe(server)}`,
        );
      }
      perServer.set(
        server.toLowerCase(),
        integerOption(`fleetBudget.perServer.${server}`, limit, 1, MAX_PER_SERVER),
      );
    }
  }
  const defaultPerServer =
    input.defaultPerServer === undefined
      ? undefined
      : integerOption('fleetBudget.defaultPerServer', input.defaultPerServer, 1, MAX_PER_SERVER);
  if (perServer.size === 0 && defaultPerServer === undefined) {
    throw new ConfigError(
      'fleetBudget.perServer',
      'Expected `fleetBudget.perServer` with at least one server or `fleetBudget.defaultPerServer`, got neither',
    );
  }
  const leaseTtlMs = integerOption(
    'fleetBudget.leaseTtlMs',
    input.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS,
    MIN_LEASE_TTL_MS,
    MAX_LEASE_TTL_MS,
  );
  const prefix = input.prefix ?? DEFAULT_PREFIX;
  if (typeof prefix !== 'string' || !PREFIX.test(prefix)) {
    throw new ConfigError(
      'fleetBudget.prefix',
      `Expected \`fleetBudget.prefix\` to be 1 to 100 letters, digits or :._-, got ${describe(prefix)}`,
    );
  }
  if (store.kind === 'postgres' && prefix.length > MAX_PG_PREFIX) {
    throw new ConfigError(
      'fleetBudget.prefix',
      `Expected \`fleetBudget.prefix\` to be at most ${MAX_PG_PREFIX} characters with \`postgres\` (it names a schema), got ${describe(prefix)}`,
    );
  }
  return { store, perServer, defaultPerServer, leaseTtlMs, prefix };
}

// Exactly one of `redis` and `postgres`, each a URL or a client of its kind.
function resolveStore(input: FleetBudgetOptions): LeaseStoreOptions {
  const { redis, postgres } = input;
  if (redis !== undefined && postgres !== undefined) {
    throw new ConfigError(
      'fleetBudget.postgres',
      `Expected one of \`fleetBudget.redis\` and \`fleetBudget.postgres\`, got both`,
    );
  }
  if (redis === undefined && postgres === undefined) {
    throw new ConfigError(
      'fleetBudget.redis',
      'Expected `fleetBudget.redis` (a redis:// URL or an ioredis instance) or `fleetBudget.postgres` (a postgres:// URL or a pg.Pool), got neither',
    );
  }
  if (postgres !== undefined) {
    const isPool =
      typeof postgres === 'object' &&
      postgres !== null &&
      typeof (postgres as Partial<Pool>).query === 'function' &&
      typeof (postgres as Partial<Pool>).connect === 'function' &&
      typeof (postgres as { options?: unknown }).options === 'object';
    const isUrl = typeof postgres === 'string' && /^postgres(ql)?:\/\/./.test(postgres);
    if (!isPool && !isUrl) {
      throw new ConfigError(
        'fleetBudget.postgres',
        `Expected \`fleetBudget.postgres\` to be a postgres:// URL or a pg.Pool, got ${describe(postgres)}`,
      );
    }
    return { kind: 'postgres', postgres };
  }
  const isClient =
    typeof redis === 'object' &&
    redis !== null &&
    typeof (redis as Partial<Redis>).evalsha === 'function' &&
    typeof (redis as Partial<Redis>).duplicate === 'function';
  const isUrl = typeof redis === 'string' && /^rediss?:\/\/./.test(redis);
  if (!isClient && !isUrl) {
    throw new ConfigError(
      'fleetBudget.redis',
      `Expected \`fleetBudget.redis\` to be a redis:// URL or an ioredis instance (or \`fleetBudget.postgres\` instead), got ${describe(redis)}`,
    );
  }
  return { kind: 'redis', redis: redis as string | Redis };
}
