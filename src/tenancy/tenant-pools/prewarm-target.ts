/**
 * Prewarm as TenantPools runs it: the {@link PrewarmTarget} that plans with the cache's
 * free places and the budget's free slots, and warms one tenant through the router the
 * way an acquire finds its pool, except that it only fills a free place (it never evicts
 * a pool) and opens connections from free budget slots only.
 */
import type { ConnectionBudget } from '../pool/budget.js';
import type { OrgRegistry } from '../registry/org-registry.js';
import type { CircuitBreaker } from './circuit-breaker.js';
import { breakerKey, type PoolMonitor } from './monitor.js';
import type { PoolCache } from './pool-cache.js';
import { activeOrgs, type PrewarmTarget } from './prewarm.js';
import type { PoolRouter } from './router.js';

/** What prewarming works with; all of it owned by TenantPools. */
export interface PrewarmDeps {
  registry: OrgRegistry;
  budget: ConnectionBudget;
  breaker: CircuitBreaker;
  monitor: PoolMonitor;
  cache: PoolCache;
  router: PoolRouter;
  /** Connections to open per database-mode tenant: `max(1, perTenantMinConnections)`. */
  perTenant: number;
}

/** The prewarm target over TenantPools' registry, cache, budget and router. */
export function prewarmTarget(deps: PrewarmDeps): PrewarmTarget {
  const { registry, budget, breaker, monitor, cache, router, perTenant } = deps;
  return {
    activeOrgs: () => activeOrgs(registry),
    freePlaces: () => cache.free,
    freeSlots: () => {
      const snapshot = budget.snapshot();
      return snapshot.waiting > 0 ? 0 : snapshot.max - snapshot.open;
    },
    slotsPerTenant: () => perTenant,
    isCached: (slug) => cache.has(slug),
    warm: async (org) => {
      let found = router.cached(org);
      if (!found) {
        const url = await router.resolveSecret(org);
        // An acquire may have built the pool while the secret resolved: use that one.
        found = router.cached(org) ?? router.build(org, url, false);
      }
      // Acquires took the place planned for this tenant in the meantime.
      if (found === null) return false;
      const { pool } = found;
      breaker.check(breakerKey(pool), org.slug);
      return (await pool.warm(pool.mode === 'schema' ? 1 : perTenant)) > 0 || pool.counts().open > 0;
    },
    onFailure: (org, error) => monitor.report(org.slug, error as Error, 'prewarm failed'),
  };
}
