/**
 * TenantPools: one object per process that lends connections to tenants' data.
 *
 * - Pools are built lazily, on a tenant's first acquire, and cached in LRU order up to
 *   `maxCachedPools`; a pool with nothing lent and nobody waiting is evictable, the least
 *   recently used first. A pool in use is never evicted: a new tenant waits for a place.
 * - Every connection of every pool is paid for from one {@link ConnectionBudget}, so the
 *   process never holds more than `maxConnections` connections, however many tenants.
 * - Schema-mode tenants share one pool on the registry database; each checkout switches
 *   `search_path` to the tenant's schema.
 */
import { EventEmitter } from 'node:events';
import {
  AcquireTimeoutError,
  ClosedError,
  ConfigError,
  describe,
  PoolCapacityError,
  TenantInactiveError,
  UnknownTenantError,
  ValidationError,
} from '../errors.js';
import { ConnectionBudget } from './budget.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { ConnectionPool, type PooledConnection, type PoolHooks } from './connection-pool.js';
import { backendOf } from './drivers/driver.js';
import type { Org } from './org.js';
import { closePools, PoolCache } from './pool-cache.js';
import { breakerKey, PoolMonitor, poolInfo } from './pool-monitor.js';
import {
  type ResolvedTenantPoolsOptions,
  resolveTenantPoolsOptions,
  type TenantPoolsOptions,
} from './pool-options.js';
import type { TenantPoolsEventMap, TenantPoolsStats } from './pool-stats.js';
import { activeOrgs, type PrewarmReport, runPrewarm } from './prewarm.js';
import { OrgRegistry } from './registry.js';
import type { SecretsResolver } from './secrets.js';
import { Lease, type TenantConnection } from './tenant-connection.js';

/** Options of `acquire`. */
export interface AcquireOptions {
  /** Ends the wait with the signal's reason; no slot is kept for an aborted acquire. */
  signal?: AbortSignal;
}

interface Target {
  org: Org;
  pool: ConnectionPool;
  schema: string | null;
}

/**
 * The lazy, LRU-evicting, budgeted registry of per-tenant connection pools.
 *
 * ```ts
 * await using pools = await TenantPools.open({ registry, maxConnections: 50 });
 * await pools.withTenant('acme', (db) => db.query('select count(*) from invoices'));
 * ```
 */
export class TenantPools extends EventEmitter<TenantPoolsEventMap> implements AsyncDisposable {
  /** The registry the tenants are looked up in. */
  readonly registry: OrgRegistry;
  /** The options in force, defaults filled in. */
  readonly options: ResolvedTenantPoolsOptions;
  readonly #ownsRegistry: boolean;
  readonly #secrets: SecretsResolver;
  readonly #budget: ConnectionBudget;
  readonly #breaker: CircuitBreaker;
  readonly #pools: PoolCache;
  #shared: ConnectionPool | undefined;
  readonly #monitor: PoolMonitor;
  readonly #hooks: PoolHooks;
  readonly #sweeper: NodeJS.Timeout;
  #lastPrewarm: PrewarmReport | undefined;
  #closing: Promise<void> | undefined;

  private constructor(options: ResolvedTenantPoolsOptions, registry: OrgRegistry, ownsRegistry: boolean) {
    super();
    this.options = options;
    this.registry = registry;
    this.#ownsRegistry = ownsRegistry;
    this.#secrets = options.secrets ?? registry.secrets;
    this.#budget = new ConnectionBudget(options.maxConnections);
    this.#breaker = new CircuitBreaker(options.failureThreshold, options.failureCooldownMs);
    this.#monitor = new PoolMonitor(this, this.#breaker, options.logger);
    this.#pools = new PoolCache(options.maxCachedPools, (pool, reason) => {
      this.#monitor.counters.poolEvictions++;
      this.emit('pool:evict', { ...poolInfo(pool), reason });
    });
    // Often enough that a connection outlives its timeout by at most a second (or half
    // the timeout when that is shorter), rarely enough to cost nothing.
    const every = Math.max(
      5,
      Math.min(1000, Math.floor(Math.min(options.idleTimeoutMs, options.maxLifetimeMs) / 2)),
    );
    // A pool nobody uses any more is a place for a tenant waiting for one.
    this.#hooks = this.#monitor.hooks((pool) => this.#pools.settled(pool));
    this.#sweeper = setInterval(() => this.#sweep(), every);
    this.#sweeper.unref();
  }

  /**
   * Validates the options ({@link ConfigError}), opens the registry when given its URL, and
   * prewarms when `prewarm: true`.
   */
  static async open(options: TenantPoolsOptions): Promise<TenantPools> {
    const resolved = resolveTenantPoolsOptions(options);
    const owns = typeof resolved.registry === 'string';
    const registry =
      typeof resolved.registry === 'string'
        ? await OrgRegistry.open(resolved.registry, {
            ...(resolved.secrets ? { secrets: resolved.secrets } : {}),
            connectTimeoutMs: resolved.connectTimeoutMs,
          })
        : resolved.registry;
    const pools = new TenantPools(resolved, registry, owns);
    if (resolved.prewarm) {
      try {
        await pools.prewarm();
      } catch (err) {
        await pools.close();
        throw err;
      }
    }
    return pools;
  }

  /** The report of the last `prewarm()`, if one ran. */
  get lastPrewarm(): PrewarmReport | undefined {
    return this.#lastPrewarm;
  }

  /**
   * Lends a connection to the tenant's data, waiting in FIFO order when its pool or the
   * budget is full. Throws {@link UnknownTenantError}, {@link TenantInactiveError},
   * {@link TenantUnavailableError}, {@link AcquireTimeoutError} (after `acquireTimeoutMs`),
   * {@link PoolCapacityError} (every cached pool busy that long), {@link ClosedError}, or
   * the signal's reason.
   */
  async acquire(slugOrOrg: string | Org, options: AcquireOptions = {}): Promise<TenantConnection> {
    this.#assertOpen();
    const started = performance.now();
    const deadline = Date.now() + this.options.acquireTimeoutMs;
    const { signal } = options;
    signal?.throwIfAborted();
    const lent = await this.#withTarget(slugOrOrg, { deadline, signal }, async (target) => {
      const { org, pool, schema } = target;
      this.#breaker.check(breakerKey(pool), org.slug);
      const conn = await pool.acquire({
        signal,
        deadline,
        schema,
        timeoutError: () => this.#timedOut(new AcquireTimeoutError(org.slug, this.options.acquireTimeoutMs)),
      });
      return this.#lend(target, conn, started);
    });
    // Only a lookup without waiting gives up with null.
    return lent as TenantConnection;
  }

  /**
   * Lends a connection only if that needs no waiting for a slot: an idle one, or a new one
   * within the budget or by reclaiming another pool's idle connection. Resolves to null
   * otherwise (pool at its maximum, callers queued, budget exhausted, no cache place).
   * Still throws for an unknown, inactive or unavailable tenant.
   */
  async tryAcquire(slugOrOrg: string | Org): Promise<TenantConnection | null> {
    this.#assertOpen();
    const started = performance.now();
    return this.#withTarget(slugOrOrg, null, async (target) => {
      this.#breaker.check(breakerKey(target.pool), target.org.slug);
      const conn = await target.pool.tryAcquire(target.schema);
      return conn === null ? null : this.#lend(target, conn, started);
    });
  }

  /**
   * Runs `fn` with a connection and gives it back afterwards. When `fn` throws, the
   * connection is closed rather than reused (it may be inside a broken transaction).
   */
  async withTenant<T>(
    slugOrOrg: string | Org,
    fn: (db: TenantConnection) => Promise<T> | T,
    options: AcquireOptions = {},
  ): Promise<T> {
    const db = await this.acquire(slugOrOrg, options);
    let result: T;
    try {
      result = await fn(db);
    } catch (err) {
      db.release(err);
      throw err;
    }
    db.release();
    return result;
  }

  /**
   * Opens connections for active tenants ahead of demand, `prewarmConcurrency` at a time,
   * inside the budget and without evicting a pool. See {@link PrewarmReport}.
   */
  async prewarm(): Promise<PrewarmReport> {
    this.#assertOpen();
    const target = Math.max(1, this.options.perTenantMinConnections);
    const report = await runPrewarm(
      {
        activeOrgs: () => activeOrgs(this.registry),
        freePlaces: () => this.#pools.free,
        freeSlots: () => {
          const budget = this.#budget.snapshot();
          return budget.waiting > 0 ? 0 : budget.max - budget.open;
        },
        slotsPerTenant: () => target,
        isCached: (slug) => this.#pools.has(slug),
        warm: async (org) => {
          let found = this.#cachedTarget(org);
          if (!found) {
            const url = await this.#resolveSecret(org);
            // An acquire may have built the pool while the secret resolved: use that one.
            found = this.#cachedTarget(org) ?? this.#newTarget(org, url, 'cached-only');
          }
          // Acquires took the place planned for this tenant in the meantime.
          if (found === null) return false;
          const { pool } = found;
          this.#breaker.check(breakerKey(pool), org.slug);
          return (await pool.warm(pool.mode === 'schema' ? 1 : target)) > 0 || pool.counts().open > 0;
        },
        onFailure: (org, error) => this.#monitor.report(org.slug, error as Error, 'prewarm failed'),
      },
      this.options.prewarmConcurrency,
    );
    this.#lastPrewarm = report;
    this.options.logger?.info({ ...report }, 'tenant pools prewarmed');
    return report;
  }

  /**
   * Drops the tenant's pool: idle connections close now, lent ones when released, and the
   * next acquire builds a new pool (re-reading the org and re-resolving its secret). Also
   * forgets the tenant's connect failures.
   */
  async invalidate(slug: string): Promise<void> {
    this.#assertOpen();
    if (typeof slug !== 'string') {
      throw new ValidationError('slug', `Expected a tenant slug, got ${describe(slug)}`);
    }
    this.#breaker.reset(slug);
    this.#pools.evict(slug, 'invalidate');
  }

  /** Budget, every pool, counters and acquire-wait percentiles, right now. */
  stats(): TenantPoolsStats {
    const pools = this.#pools.pools();
    if (this.#shared) pools.unshift(this.#shared);
    return {
      budget: this.#budget.snapshot(),
      pools: pools.map((pool) => ({
        slug: pool.slug,
        mode: pool.mode,
        backend: pool.backend,
        ...pool.counts(),
        lastUsedAt: pool.lastUsedAt,
      })),
      counters: { ...this.#monitor.counters, reclaims: this.#budget.reclaims },
      acquireWaitMs: this.#monitor.waits.summary(),
    };
  }

  /**
   * Closes every pool. Waiters get {@link ClosedError} at once; lent connections are
   * closed when released, or after `closeTimeoutMs` regardless. Closes the registry when
   * TenantPools opened it. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #shutdown(): Promise<void> {
    clearInterval(this.#sweeper);
    this.#pools.rejectWaiters(new ClosedError('TenantPools'));
    const pools = this.#pools.allPools();
    if (this.#shared) pools.push(this.#shared);
    // No slot is granted from now on; queued requests are rejected and their pools'
    // waiters get ClosedError as the pools close.
    this.#budget.close();
    await closePools(pools, this.options.closeTimeoutMs, () => {
      this.options.logger?.warn('tenant pools: closing connections still lent after closeTimeoutMs');
    });
    if (this.#ownsRegistry) {
      try {
        await this.registry.close();
      } catch (err) {
        this.#monitor.report(null, err as Error, 'closing the registry failed');
      }
    }
  }

  #assertOpen(): void {
    if (this.#closing) throw new ClosedError('TenantPools');
  }

  #lend(target: Target, conn: PooledConnection, started: number): TenantConnection {
    this.#monitor.lent(started);
    return new Lease(target.pool, conn, target.org.slug, target.pool.backend, target.schema);
  }

  #timedOut<E extends Error & { slug: string }>(error: E): E {
    return this.#monitor.timedOut(error, this.options.acquireTimeoutMs);
  }

  async #org(slugOrOrg: string | Org): Promise<Org> {
    let org: Org;
    if (typeof slugOrOrg === 'string') {
      const found = await this.registry.find(slugOrOrg);
      if (found === null) throw new UnknownTenantError(slugOrOrg);
      org = found;
    } else if (typeof slugOrOrg === 'object' && slugOrOrg !== null && typeof slugOrOrg.slug === 'string')
      org = slugOrOrg;
    else throw new ValidationError('slug', `Expected a tenant slug or an Org, got ${describe(slugOrOrg)}`);
    if (!org.active) throw new TenantInactiveError(org.slug);
    return org;
  }

  // Finds the pool (and schema) an acquire goes to and hands it to `use`. A new tenant's
  // secret is resolved first (its backend is only known from the resolved URL); with
  // `wait`, it then waits for a place in the cache when every cached pool is busy, without
  // `wait` the answer is null.
  //
  // `use` is called synchronously, in the same turn as the lookup: its checkout (or its
  // place in the queue) marks the pool busy before any other caller runs. Returning the
  // pool to an awaiting caller instead would leave a gap in which another tenant could
  // evict the pool, idle as it still looks, and close it under our feet.
  async #withTarget<T>(
    slugOrOrg: string | Org,
    wait: { deadline: number; signal: AbortSignal | undefined } | null,
    use: (target: Target) => Promise<T>,
  ): Promise<T | null> {
    const org = await this.#org(slugOrOrg);
    let url: string | undefined;
    for (;;) {
      this.#assertOpen();
      const cached = this.#cachedTarget(org);
      if (cached) return use(cached);
      if (url === undefined) {
        url = await this.#resolveSecret(org);
        // Another caller may have built the pool meanwhile: look again.
        continue;
      }
      const built = this.#newTarget(org, url, 'evict');
      if (built) return use(built);
      if (!wait) return null;
      await this.#pools.waitForPlace({
        deadline: wait.deadline,
        signal: wait.signal,
        timeoutError: () =>
          this.#timedOut(
            new PoolCapacityError(org.slug, this.options.maxCachedPools, this.options.acquireTimeoutMs),
          ),
      });
    }
  }

  // The shared schema-mode pool, or the tenant's cached pool; null when it has none.
  #cachedTarget(org: Org): Target | null {
    if (org.storageMode === 'schema') {
      if (this.registry.backend !== 'postgres') {
        throw new ConfigError(
          'storageMode',
          `Expected schema-mode tenants on a Postgres registry, got tenant ${JSON.stringify(org.slug)} on a ${this.registry.backend} registry`,
        );
      }
      this.#shared ??= this.#buildPool(org, null, this.registry.databaseUrl);
      return { org, pool: this.#shared, schema: org.schemaName };
    }
    const entry = this.#pools.get(org.slug);
    if (!entry) return null;
    if (entry.org.databaseUrl !== org.databaseUrl || entry.org.storageMode !== org.storageMode) {
      // The org was moved to another database: new connections must go there.
      this.#pools.evict(org.slug, 'config-change');
      return null;
    }
    entry.pool.maxConnections = this.#poolMax(org);
    return { org, pool: entry.pool, schema: null };
  }

  // Synchronous on purpose: between finding a place and taking it nothing may interleave.
  // Prewarm passes 'cached-only': it fills free places and never evicts.
  #newTarget(org: Org, url: string, room: 'evict' | 'cached-only'): Target | null {
    if (!this.#pools.makeRoom(room === 'evict')) return null;
    const pool = this.#buildPool(org, org.slug, url);
    this.#pools.add(org.slug, { pool, org });
    return { org, pool, schema: null };
  }

  // Resolves a database-mode org's secret. A failure counts like a refused connection:
  // a tenant whose secret is gone fails fast behind the circuit breaker too.
  async #resolveSecret(org: Org): Promise<string> {
    this.#breaker.check(org.slug);
    try {
      const url = await this.#secrets.resolve(org.databaseUrl as string);
      backendOf(url);
      return url;
    } catch (err) {
      this.#monitor.secretFailed(org.slug, err);
      throw err;
    }
  }

  #poolMax(org: Org): number {
    return Math.min(org.maxConnections ?? this.options.perTenantMaxConnections, this.options.maxConnections);
  }

  #buildPool(org: Org, slug: string | null, url: string): ConnectionPool {
    const shared = slug === null;
    const ref = org.databaseUrl;
    const pool = new ConnectionPool({
      slug,
      mode: shared ? 'schema' : 'database',
      backend: backendOf(url),
      maxConnections: shared ? this.options.schemaPoolMaxConnections : this.#poolMax(org),
      minConnections: Math.min(
        this.options.perTenantMinConnections,
        shared ? this.options.schemaPoolMaxConnections : this.#poolMax(org),
      ),
      maxLifetimeMs: this.options.maxLifetimeMs,
      connectTimeoutMs: this.options.connectTimeoutMs,
      budget: this.#budget,
      url,
      resolveUrl: shared ? async () => this.registry.databaseUrl : () => this.#secrets.resolve(ref as string),
      hooks: this.#hooks,
    });
    this.emit('pool:create', poolInfo(pool));
    return pool;
  }

  #sweep(): void {
    const now = Date.now();
    for (const pool of this.#pools.pools()) pool.sweep(now, this.options.idleTimeoutMs);
    this.#shared?.sweep(now, this.options.idleTimeoutMs);
  }
}
