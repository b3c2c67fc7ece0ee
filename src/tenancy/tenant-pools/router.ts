/**
 * Which pool serves an org: the shared schema-mode pool on the registry database, or the
 * org's own cached pool, built on first use from its resolved secret. Everything here is
 * synchronous except resolving a secret, so a caller can find (or build) a pool and start
 * its checkout in one turn of the event loop.
 */
import { ConfigError } from '../../reporting/errors.js';
import { databaseKindOf } from '../drivers/driver.js';
import { type Org, validateSchemaName } from '../org.js';
import type { ConnectionBudget } from '../pool/budget.js';
import { ConnectionPool } from '../pool/connection-pool.js';
import type { LeaseTaker } from '../pool/fleet-budget/lease.js';
import type { PoolHooks } from '../pool/types.js';
import type { OrgRegistry } from '../registry/org-registry.js';
import type { SecretsResolver } from '../secrets.js';
import type { CircuitBreaker } from './circuit-breaker.js';
import type { PoolMonitor } from './monitor.js';
import type { ResolvedTenantPoolsOptions } from './options.js';
import type { PoolCache } from './pool-cache.js';

/** The pool an acquire goes to, and the schema to switch to in schema mode. */
export interface Target {
  org: Org;
  pool: ConnectionPool;
  schema: string | null;
}

/** What the router works with; all of it owned by TenantPools. */
export interface RouterDeps {
  registry: OrgRegistry;
  secrets: SecretsResolver;
  options: ResolvedTenantPoolsOptions;
  budget: ConnectionBudget;
  /** The fleet budget, when configured. */
  leases: LeaseTaker | undefined;
  breaker: CircuitBreaker;
  monitor: PoolMonitor;
  cache: PoolCache;
  hooks: PoolHooks<ConnectionPool>;
  /** Told of every pool built (the `pool:create` event). */
  onCreate(pool: ConnectionPool): void;
}

/** Finds or builds the pool of an org. */
export class PoolRouter {
  readonly #deps: RouterDeps;
  #shared: ConnectionPool | undefined;

  constructor(deps: RouterDeps) {
    this.#deps = deps;
  }

  /** The pool schema-mode tenants share, once one of them has been served. */
  get shared(): ConnectionPool | undefined {
    return this.#shared;
  }

  /**
   * The shared schema-mode pool, or the tenant's cached pool; null when it has none.
   * {@link ValidationError} for a schema-mode org without a valid `schemaName`.
   */
  cached(org: Org): Target | null {
    const { registry } = this.#deps;
    if (org.storageMode === 'schema') {
      if (registry.kind !== 'postgres') {
        throw new ConfigError(
          'storageMode',
          `Expected schema-mode tenants on a Postgres registry, got tenant ${JSON.stringify(org.slug)} on a ${registry.kind} registry`,
        );
      }
      // An Org may be passed in by hand: a checkout without a valid schema would run on
      // whatever session the last tenant left.
      const schema = validateSchemaName(org.schemaName);
      this.#shared ??= this.#build(org, null, registry.databaseUrl);
      return { org, pool: this.#shared, schema };
    }
    const pool = this.ownPool(org);
    return pool === undefined ? null : { org, pool, schema: null };
  }

  /**
   * A database-mode org's cached pool, marked as the most recently used one and held to
   * the org's `maxConnections`; undefined when it has none, or had one for the database
   * the org was moved away from (that one is evicted).
   */
  ownPool(org: Org): ConnectionPool | undefined {
    const { cache } = this.#deps;
    const entry = cache.use(org.slug);
    if (entry === undefined) return undefined;
    if (entry.org.databaseUrl !== org.databaseUrl || entry.org.storageMode !== org.storageMode) {
      // The org was moved to another database: new connections must go there.
      cache.evict(org.slug, 'config-change');
      return undefined;
    }
    entry.pool.maxConnections = this.#poolMax(org);
    return entry.pool;
  }

  /**
   * Builds and caches a database-mode org's pool, evicting the least recently used idle
   * pool when `evict` allows (prewarm does not: it only fills free places). Null when the
   * cache has no room. Synchronous on purpose: between finding a place and taking it
   * nothing may interleave.
   */
  build(org: Org, url: string, evict: boolean): Target | null {
    const { cache } = this.#deps;
    if (!cache.makeRoom(evict)) return null;
    const pool = this.#build(org, org.slug, url);
    cache.add(org.slug, pool, org);
    return { org, pool, schema: null };
  }

  /**
   * Resolves a database-mode org's secret. A failure counts like a refused connection: a
   * tenant whose secret is gone fails fast behind the circuit breaker too.
   */
  async resolveSecret(org: Org): Promise<string> {
    const { breaker, secrets, monitor } = this.#deps;
    breaker.check(org.slug);
    try {
      const url = await secrets.resolve(org.databaseUrl as string);
      databaseKindOf(url);
      return url;
    } catch (err) {
      monitor.secretFailed(org.slug, err);
      throw err;
    }
  }

  #poolMax(org: Org): number {
    const { options } = this.#deps;
    return Math.min(org.maxConnections ?? options.perTenantMaxConnections, options.maxConnections);
  }

  #build(org: Org, slug: string | null, url: string): ConnectionPool {
    const { options, registry, secrets } = this.#deps;
    const shared = slug === null;
    const ref = org.databaseUrl;
    const max = shared ? options.schemaPoolMaxConnections : this.#poolMax(org);
    const pool = new ConnectionPool({
      slug,
      mode: shared ? 'schema' : 'database',
      kind: databaseKindOf(url),
      maxConnections: max,
      minConnections: Math.min(options.perTenantMinConnections, max),
      maxLifetimeMs: options.maxLifetimeMs,
      connectTimeoutMs: options.connectTimeoutMs,
      budget: this.#deps.budget,
      leases: this.#deps.leases,
      url,
      // The shared pool's URL is the registry's own; a tenant's is its secret, resolved
      // again after a lifetime recycle so a rotated secret is picked up.
      resolveUrl: shared ? async () => registry.databaseUrl : () => secrets.resolve(ref as string),
      hooks: this.#deps.hooks,
    });
    this.#deps.onCreate(pool);
    return pool;
  }
}
