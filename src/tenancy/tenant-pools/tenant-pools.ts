/**
 * TenantPools: one object per process that lends connections to tenants' data.
 *
 * - Pools are built lazily, on a tenant's first acquire, and cached in LRU order up to
 *   `maxCachedPools`; a pool with nothing lent and nobody waiting is evictable, the least
 *   recently used first. A pool in use is never evicted: a new tenant waits for a place.
 * - Every connection of every pool is paid for from one {@link ConnectionBudget}, so the
 *   process never holds more than `maxConnections` connections, however many tenants.
 *   The budget covers the tenant pools and the shared schema-mode pool, nothing else: the
 *   registry's own connection (one, whether TenantPools opened the registry from a URL or
 *   was given it) is the registry's, so a process holds at most `maxConnections + 1`.
 * - Schema-mode tenants share one pool on the registry database; each checkout switches
 *   `search_path` to the tenant's schema.
 */
import { EventEmitter } from 'node:events';
import { ClosedError, describe, ValidationError } from '../../reporting/errors.js';
import type { Org } from '../org.js';
import { ConnectionBudget } from '../pool/budget.js';
import { FleetBudget } from '../pool/fleet-budget/fleet-budget.js';
import { OrgRegistry } from '../registry/org-registry.js';
import { type AcquireOptions, acquireSignal } from './acquire-options.js';
import { Checkout } from './checkout.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { PoolMonitor, poolInfo } from './monitor.js';
import {
  type ResolvedTenantPoolsOptions,
  resolveTenantPoolsOptions,
  type TenantPoolsOptions,
} from './options.js';
import { closePools, PoolCache } from './pool-cache.js';
import { type PrewarmReport, runPrewarm } from './prewarm.js';
import { prewarmTarget } from './prewarm-target.js';
import { PoolRouter } from './router.js';
import type { TenantPoolsEventMap, TenantPoolsStats } from './stats.js';
import type { TenantConnection } from './tenant-connection.js';

export type { AcquireOptions } from './acquire-options.js';

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
  readonly #budget: ConnectionBudget;
  // The fleet-wide budget per database server, when configured.
  readonly #fleet: FleetBudget | undefined;
  readonly #breaker: CircuitBreaker;
  readonly #pools: PoolCache;
  readonly #router: PoolRouter;
  readonly #monitor: PoolMonitor;
  readonly #checkout: Checkout;
  readonly #sweeper: NodeJS.Timeout;
  #lastPrewarm: PrewarmReport | undefined;
  #closing: Promise<void> | undefined;

  private constructor(options: ResolvedTenantPoolsOptions, registry: OrgRegistry, ownsRegistry: boolean) {
    super();
    this.options = options;
    this.registry = registry;
    this.#ownsRegistry = ownsRegistry;
    this.#budget = new ConnectionBudget(options.maxConnections);
    this.#fleet =
      options.fleetBudget &&
      new FleetBudget(options.fleetBudget, this.#budget, options.acquireTimeoutMs, options.logger);
    this.#breaker = new CircuitBreaker(options.failureThreshold, options.failureCooldownMs);
    this.#monitor = new PoolMonitor(this, this.#breaker, options.logger);
    this.#pools = new PoolCache(options.maxCachedPools, (pool, reason) => {
      this.#monitor.counters.poolEvictions++;
      this.#monitor.emit('pool:evict', { ...poolInfo(pool), reason });
    });
    // Often enough that a connection outlives its timeout by at most a second (or half
    // the timeout when that is shorter), rarely enough to cost nothing.
    const every = Math.max(
      5,
      Math.min(1000, Math.floor(Math.min(options.idleTimeoutMs, options.maxLifetimeMs) / 2)),
    );
    this.#router = new PoolRouter({
      registry,
      secrets: options.secrets ?? registry.secrets,
      options,
      budget: this.#budget,
      leases: this.#fleet,
      breaker: this.#breaker,
      monitor: this.#monitor,
      cache: this.#pools,
      // A pool nobody uses any more is a place for a tenant waiting for one.
      hooks: this.#monitor.hooks((pool) => this.#pools.settled(pool)),
      onCreate: (pool) => this.#monitor.emit('pool:create', poolInfo(pool)),
    });
    this.#checkout = new Checkout({
      registry,
      options,
      router: this.#router,
      cache: this.#pools,
      breaker: this.#breaker,
      monitor: this.#monitor,
      fleet: this.#fleet,
      closing: () => this.#closing !== undefined,
    });
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
  acquire(slugOrOrg: string | Org, options?: AcquireOptions): Promise<TenantConnection> {
    // Not async: a hit hands back a settled promise with no await in between.
    try {
      this.#assertOpen();
      const signal = options === undefined ? undefined : acquireSignal(options);
      signal?.throwIfAborted();
      const lent = this.#checkout.lendNow(slugOrOrg);
      // A pool that refuses now makes an acquire wait: the long way queues it.
      return lent == null ? this.#checkout.acquire(slugOrOrg, signal) : Promise.resolve(lent);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Lends a connection only if that needs no waiting for a slot: an idle one, or a new one
   * within the budget or by reclaiming another pool's idle connection. Resolves to null
   * otherwise (pool at its maximum, callers queued, budget exhausted, no cache place); a
   * pool of a known tenant that is at its maximum with none idle, or has callers queued,
   * answers null at once, as cheaply as a hit. Still throws for an unknown, inactive or
   * unavailable tenant.
   */
  tryAcquire(slugOrOrg: string | Org): Promise<TenantConnection | null> {
    try {
      this.#assertOpen();
      const lent = this.#checkout.lendNow(slugOrOrg);
      return lent === undefined ? this.#checkout.tryAcquire(slugOrOrg) : Promise.resolve(lent);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Runs `fn` with a connection and gives it back afterwards. When `fn` throws, the
   * connection is closed rather than reused (it may be inside a broken transaction).
   */
  async withTenant<T>(
    slugOrOrg: string | Org,
    fn: (db: TenantConnection) => Promise<T> | T,
    options?: AcquireOptions,
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
    const target = prewarmTarget({
      registry: this.registry,
      budget: this.#budget,
      breaker: this.#breaker,
      monitor: this.#monitor,
      cache: this.#pools,
      router: this.#router,
      perTenant: Math.max(1, this.options.perTenantMinConnections),
    });
    const report = await runPrewarm(target, this.options.prewarmConcurrency);
    this.#lastPrewarm = report;
    this.options.logger.info({ ...report }, 'tenant pools prewarmed');
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

  /** Budget, every pool, counters, acquire-wait percentiles, open breakers and fleet leases, right now. */
  stats(): TenantPoolsStats {
    const shared = this.#router.shared;
    const pools = shared ? [shared, ...this.#pools.pools()] : this.#pools.pools();
    return {
      budget: this.#budget.snapshot(),
      pools: pools.map((pool) => ({
        slug: pool.slug,
        mode: pool.mode,
        kind: pool.kind,
        ...pool.counts(),
        lastUsedAt: pool.lastUsedAt,
      })),
      counters: { ...this.#monitor.counters, reclaims: this.#budget.reclaims },
      acquireWaitMs: this.#monitor.waits.summary(),
      breakers: this.#monitor.openBreakers(),
      ...(this.#fleet ? { fleet: this.#fleet.stats() } : {}),
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
    const shared = this.#router.shared;
    if (shared) pools.push(shared);
    // No slot is granted from now on; queued requests are rejected and their pools'
    // waiters get ClosedError as the pools close.
    this.#budget.close();
    this.#fleet?.stopWaiting();
    await closePools(pools, this.options.closeTimeoutMs, () => {
      this.options.logger.warn('tenant pools: closing connections still lent after closeTimeoutMs');
    });
    // Every connection has closed and given its lease back: nothing left to renew.
    await this.#fleet?.close();
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

  #sweep(): void {
    const now = Date.now();
    for (const pool of this.#pools.pools()) pool.sweep(now, this.options.idleTimeoutMs);
    this.#router.shared?.sweep(now, this.options.idleTimeoutMs);
  }
}
