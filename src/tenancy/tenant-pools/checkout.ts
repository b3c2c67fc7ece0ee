/**
 * How TenantPools lends a connection: the hit path and the long way round.
 *
 * - The hit path is synchronous: the org's answer already in the registry's cache (or the
 *   Org given), its pool at hand (its own cached database-mode pool, or the shared
 *   schema-mode one), and an idle connection ready to lend as it is (no ping due, nobody
 *   queued before). In schema mode the session reset and `search_path` switch ride on the
 *   tenant's first statement (`setCheckoutPreface`), so they need no wait either. It
 *   allocates the lease and, in schema mode, the pool's target and the preface's
 *   statements: no promise of its own, no closure, no timer. Most checkouts of a busy
 *   worker take it, so it is kept within the cost of `pg.Pool`'s own checkout
 *   (docs/BENCHMARKS.md). A `tryAcquire` that the pool must refuse (at its maximum with
 *   none idle, or callers queued) is answered there too: a worker with more slots than
 *   connections asks, and is refused, several times per job.
 * - Everything else (a lookup to run, a secret to resolve, a pool to build, a place in the
 *   cache or a connection to wait for or to ping) takes the long way, which reports
 *   whatever is wrong beyond the few errors the hit path throws at the same step.
 */
import {
  AcquireTimeoutError,
  ClosedError,
  describe,
  PoolCapacityError,
  TenantInactiveError,
  UnknownTenantError,
  ValidationError,
} from '../../reporting/errors.js';
import type { Org } from '../org.js';
import type { PooledConnection } from '../pool/connection-pool.js';
import type { FleetBudget } from '../pool/fleet-budget/fleet-budget.js';
import { withinDeadline } from '../pool/wait-queue.js';
import type { OrgRegistry } from '../registry/org-registry.js';
import type { CircuitBreaker } from './circuit-breaker.js';
import { breakerKey, type PoolMonitor } from './monitor.js';
import type { ResolvedTenantPoolsOptions } from './options.js';
import type { PoolCache } from './pool-cache.js';
import type { PoolRouter, Target } from './router.js';
import { Lease, type TenantConnection } from './tenant-connection.js';

/** What a checkout works with; all of it owned by TenantPools. */
export interface CheckoutDeps {
  registry: OrgRegistry;
  options: ResolvedTenantPoolsOptions;
  router: PoolRouter;
  cache: PoolCache;
  breaker: CircuitBreaker;
  monitor: PoolMonitor;
  /** The fleet budget, named in a timeout when it is why no connection could be opened. */
  fleet: FleetBudget | undefined;
  /** Whether TenantPools is closing. */
  closing(): boolean;
}

/** Lends connections for TenantPools: {@link lendNow} first, else {@link acquire} or {@link tryAcquire}. */
export class Checkout {
  readonly #deps: CheckoutDeps;
  // Registry answers known settled (a cache hit hands back the same promise): no timer.
  readonly #answered = new WeakSet<Promise<unknown>>();

  constructor(deps: CheckoutDeps) {
    this.#deps = deps;
  }

  /**
   * The hit path: a lease on an idle connection of the org's pool (its cached database-mode
   * pool, or the shared schema-mode pool) when one is ready without waiting for anything,
   * else null when the pool would refuse a `tryAcquire` at once (at its maximum with none
   * idle, or callers queued before), else undefined (the caller takes the long way, which
   * also reports whatever is wrong). A refusal answered here costs what a hit costs: a
   * worker with more slots than connections asks for one after every job.
   * Throws only what the long way would throw at the same step: {@link TenantUnavailableError}
   * while the pool's circuit is open, {@link ConfigError} for a schema-mode tenant on a
   * registry that is not Postgres, {@link ValidationError} for one without a valid
   * `schemaName` (an Org passed in by hand).
   */
  lendNow(slugOrOrg: string | Org): TenantConnection | null | undefined {
    const { registry, router, breaker, monitor } = this.#deps;
    const org = typeof slugOrOrg === 'string' ? registry.cached(slugOrOrg) : slugOrOrg;
    if (
      typeof org !== 'object' ||
      org === null ||
      org.active !== true ||
      (org.storageMode !== 'database' && org.storageMode !== 'schema') ||
      typeof org.slug !== 'string'
    )
      return undefined;
    // Database mode: the org's own cached pool (no target built: the common hit).
    const target = org.storageMode === 'schema' ? router.cached(org) : null;
    const pool = target ? target.pool : router.ownPool(org);
    if (pool === undefined) return undefined;
    const schema = target ? target.schema : null;
    breaker.check(breakerKey(pool), org.slug);
    const conn = pool.lendReady(Date.now(), schema);
    if (conn === undefined) return pool.refusesNow ? null : undefined;
    // Nothing was waited for.
    monitor.lent(0);
    return new Lease(pool, conn, org.slug, pool.kind, schema);
  }

  /** The long way of `TenantPools.acquire`: looks up, builds, waits (see there). */
  async acquire(slugOrOrg: string | Org, signal: AbortSignal | undefined): Promise<TenantConnection> {
    const started = performance.now();
    const deadline = Date.now() + this.#deps.options.acquireTimeoutMs;
    const lent = await this.#withTarget(slugOrOrg, { deadline, signal }, async (target) => {
      const { org, pool, schema } = target;
      this.#deps.breaker.check(breakerKey(pool), org.slug);
      const conn = await pool.acquire({
        signal,
        deadline,
        schema,
        timeoutError: () => this.#timedOut(this.#acquireTimeout(org.slug)),
      });
      return this.#lend(target, conn, started);
    });
    // Only a lookup without waiting gives up with null.
    return lent as TenantConnection;
  }

  /** The long way of `TenantPools.tryAcquire`: looks up and builds, never waits (see there). */
  async tryAcquire(slugOrOrg: string | Org): Promise<TenantConnection | null> {
    const started = performance.now();
    return this.#withTarget(slugOrOrg, null, async (target) => {
      this.#deps.breaker.check(breakerKey(target.pool), target.org.slug);
      const conn = await target.pool.tryAcquire(target.schema);
      return conn === null ? null : this.#lend(target, conn, started);
    });
  }

  #assertOpen(): void {
    if (this.#deps.closing()) throw new ClosedError('TenantPools');
  }

  #lend(target: Target, conn: PooledConnection, started: number): TenantConnection {
    this.#deps.monitor.lent(performance.now() - started);
    return new Lease(target.pool, conn, target.org.slug, target.pool.kind, target.schema);
  }

  // Names the fleet budget's Redis when it is why no connection could be opened.
  #acquireTimeout(slug: string): AcquireTimeoutError {
    const { options, fleet } = this.#deps;
    return new AcquireTimeoutError(slug, options.acquireTimeoutMs, fleet?.trouble());
  }

  #timedOut<E extends Error & { slug: string }>(error: E): E {
    return this.#deps.monitor.timedOut(error, this.#deps.options.acquireTimeoutMs);
  }

  async #org(slugOrOrg: string | Org, bounded: <R>(work: Promise<R>) => Promise<R>): Promise<Org> {
    let org: Org;
    if (typeof slugOrOrg === 'string') {
      const found = await bounded(this.#deps.registry.find(slugOrOrg));
      if (found === null) throw new UnknownTenantError(slugOrOrg);
      org = found;
    } else if (typeof slugOrOrg === 'object' && slugOrOrg !== null && typeof slugOrOrg.slug === 'string')
      org = slugOrOrg;
    else throw new ValidationError('slug', `Expected a tenant slug or an Org, got ${describe(slugOrOrg)}`);
    if (!org.active) throw new TenantInactiveError(org.slug);
    return org;
  }

  // Finds the pool (and schema) an acquire goes to and hands it to `use`. A new tenant's
  // secret is resolved first (its kind is only known from the resolved URL); with
  // `wait`, it then waits for a place in the cache when every cached pool is busy, without
  // `wait` the answer is null.
  //
  // `use` is called synchronously, in the same turn as the lookup: its checkout (or its
  // place in the queue) marks the pool busy before any other caller runs. Returning the
  // pool to an awaiting caller instead would leave a gap in which another tenant could
  // evict the pool, idle as it still looks, and close it under our feet.
  //
  // A pool closed under a caller already in it (invalidate, a config change) sends the
  // caller back to look again, to the new pool, while TenantPools itself is open.
  async #withTarget<T>(
    slugOrOrg: string | Org,
    wait: { deadline: number; signal: AbortSignal | undefined } | null,
    use: (target: Target) => Promise<T>,
  ): Promise<T | null> {
    const { router, cache, options } = this.#deps;
    // The lookup and the secret count against the caller's deadline and signal too; an Org
    // given as such, or a lookup already answered, needs no timer.
    const slug = typeof slugOrOrg === 'string' ? slugOrOrg : String(slugOrOrg?.slug);
    const timeoutError = () => this.#timedOut(this.#acquireTimeout(slug));
    const bounded = <R>(work: Promise<R>): Promise<R> => {
      if (!wait || this.#answered.has(work)) return work;
      const answered = () => this.#answered.add(work);
      work.then(answered, answered);
      return withinDeadline(work, { ...wait, timeoutError });
    };
    const org = await this.#org(slugOrOrg, bounded);
    let url: string | undefined;
    for (;;) {
      this.#assertOpen();
      const cached = router.cached(org);
      let target: Target | null = cached;
      if (!target && url === undefined) {
        url = await bounded(router.resolveSecret(org));
        // Another caller may have built the pool meanwhile: look again.
        continue;
      }
      target ??= router.build(org, url as string, true);
      if (target) {
        try {
          return await use(target);
        } catch (err) {
          if (!(err instanceof ClosedError) || this.#deps.closing() || !target.pool.closed) throw err;
          // The new pool resolves the secret afresh (invalidate's purpose).
          url = undefined;
          continue;
        }
      }
      if (!wait) return null;
      await cache.waitForPlace(org.slug, {
        deadline: wait.deadline,
        signal: wait.signal,
        timeoutError: () =>
          this.#timedOut(new PoolCapacityError(org.slug, options.maxCachedPools, options.acquireTimeoutMs)),
      });
    }
  }
}
