import type { BullMqConnection } from './queue/bullmq/cluster/connection.js';
import type { EngineName, QueueEngine } from './queue/engine.js';
import { ConfigError, describe } from './reporting/errors.js';
import { type Logger, silentLogger } from './reporting/logger.js';
import type { OrgRegistry } from './tenancy/registry/org-registry.js';
import { resolveTenantPoolsOptions, type TenantPoolsOptions } from './tenancy/tenant-pools/options.js';
import { TenantPools } from './tenancy/tenant-pools/tenant-pools.js';
import { integerOption } from './validate.js';

/** Options of the pools a fleet opens itself: those of `TenantPools.open`, on the fleet's registry. */
export type FleetPoolsOptions = Omit<TenantPoolsOptions, 'registry'>;

/** Options of {@link Fleet.open}. */
export interface FleetOptions {
  /**
   * The queue engine: the name of one to open, `bullmq` (Redis; needs `redis`), `pgboss`
   * (Postgres, in the `pgboss` schema; needs `database`) or `memory` (this process only),
   * or a ready engine instance, which the fleet closes on `close()`.
   * @default 'bullmq' when `redis` is given, else 'pgboss' when `database` is, else 'memory'
   */
  engine?: EngineName | QueueEngine;
  /**
   * Redis for the `bullmq` engine: a URL or a Redis Cluster's seed nodes
   * (`{ cluster: [...] }`; the engine opens and closes its connections), or an ioredis
   * `Redis` / `Cluster` (shared, and left open on close). See docs/engines.md.
   */
  redis?: BullMqConnection;
  /**
   * Hash slots each queue is spread over on the `bullmq` engine (its `shards`; see
   * docs/engines.md). @default 1
   */
  shards?: number;
  /** Postgres for the `pgboss` engine: a `postgres://` URL (the engine opens and closes its pool). */
  database?: string;
  /**
   * Key prefix of every Redis key and BullMQ queue of the fleet.
   * @default 'fleet'
   */
  prefix?: string;
  /**
   * The org registry, or its URL (then the fleet opens it, and closes it on `close()`).
   * Enqueue checks tenants here; workers read weights and caps here.
   */
  registry: OrgRegistry | string;
  /**
   * The tenant pools that workers borrow `ctx.db` from: a `TenantPools` (left open on
   * close), or options to open one on the fleet's registry (closed on close). Without
   * pools, workers must run with `borrowConnection: false`.
   */
  pools?: TenantPools | FleetPoolsOptions;
  /** Where the fleet and its workers log. @default silent */
  logger?: Logger;
  /**
   * Largest job `data` accepted by `enqueue`, in bytes of JSON.
   * @default 524_288 (512 KiB)
   */
  maxDataBytes?: number;
}

/** {@link FleetOptions} with every default applied. */
export interface ResolvedFleetOptions {
  engine: EngineName | QueueEngine;
  redis: BullMqConnection | undefined;
  shards: number;
  database: string | undefined;
  prefix: string;
  registry: OrgRegistry | string;
  pools: TenantPools | FleetPoolsOptions | undefined;
  logger: Logger;
  maxDataBytes: number;
}

const DEFAULTS = {
  prefix: 'fleet',
  maxDataBytes: 512 * 1024,
} satisfies Partial<ResolvedFleetOptions>;

/** Applies the defaults and checks every option; {@link ConfigError} names the first bad one. */
export function resolveFleetOptions(options: FleetOptions): ResolvedFleetOptions {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('options', `Expected fleet options to be an object, got ${describe(options)}`);
  }
  const engine =
    options.engine ??
    (options.redis !== undefined ? 'bullmq' : options.database !== undefined ? 'pgboss' : 'memory');
  if (
    engine !== 'bullmq' &&
    engine !== 'pgboss' &&
    engine !== 'memory' &&
    (typeof engine !== 'object' || engine === null)
  ) {
    throw new ConfigError(
      'engine',
      `Expected \`engine\` to be 'bullmq', 'pgboss', 'memory' or a queue engine instance, got ${describe(engine)}`,
    );
  }
  if (engine === 'pgboss' && options.database === undefined) {
    throw new ConfigError(
      'database',
      "Expected `database` (a postgres:// URL) for engine 'pgboss', got none",
    );
  }
  if (
    options.database !== undefined &&
    (typeof options.database !== 'string' || !/^postgres(ql)?:\/\//.test(options.database))
  ) {
    throw new ConfigError(
      'database',
      typeof options.database === 'string'
        ? 'Expected `database` to be a postgres:// or postgresql:// URL, got another string'
        : `Expected \`database\` to be a postgres:// URL, got ${describe(options.database)}`,
    );
  }
  if (engine === 'bullmq' && options.redis === undefined) {
    throw new ConfigError(
      'redis',
      "Expected `redis` (a URL or an ioredis instance) for engine 'bullmq', got none",
    );
  }
  if (options.redis !== undefined && typeof options.redis !== 'string' && typeof options.redis !== 'object') {
    throw new ConfigError(
      'redis',
      `Expected \`redis\` to be a URL or an ioredis instance, got ${describe(options.redis)}`,
    );
  }
  const prefix = options.prefix ?? DEFAULTS.prefix;
  if (typeof prefix !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(prefix)) {
    throw new ConfigError(
      'prefix',
      `Expected \`prefix\` to be 1–64 letters, digits, _ or -, got ${describe(prefix)}`,
    );
  }
  if (
    typeof options.registry !== 'string' &&
    (typeof options.registry !== 'object' || options.registry === null)
  ) {
    throw new ConfigError(
      'registry',
      `Expected \`registry\` to be an OrgRegistry or its URL, got ${describe(options.registry)}`,
    );
  }
  if (options.pools !== undefined && (typeof options.pools !== 'object' || options.pools === null)) {
    throw new ConfigError(
      'pools',
      `Expected \`pools\` to be a TenantPools or its options, got ${describe(options.pools)}`,
    );
  }
  if (options.pools !== undefined && !(options.pools instanceof TenantPools) && 'registry' in options.pools) {
    throw new ConfigError(
      'pools',
      'Expected pool options without `registry` (the fleet passes its own), got one',
    );
  }
  // Checked here, before Fleet.open opens anything, rather than when the pools are opened.
  if (options.pools !== undefined && !(options.pools instanceof TenantPools))
    resolveTenantPoolsOptions({ ...options.pools, registry: options.registry });
  // Redis refuses a string over 512 MiB: larger `data` could never be stored.
  const maxDataBytes = integerOption(
    'maxDataBytes',
    options.maxDataBytes ?? DEFAULTS.maxDataBytes,
    1,
    512 * 1024 * 1024,
  );
  return {
    engine,
    redis: options.redis,
    shards: options.shards ?? 1,
    database: options.database,
    prefix,
    registry: options.registry,
    pools: options.pools,
    logger: options.logger ?? silentLogger,
    maxDataBytes,
  };
}
