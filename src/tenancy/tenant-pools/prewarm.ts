/**
 * Prewarming: open connections for the active tenants before the first job needs them,
 * without leaving the budget and without evicting anything.
 *
 * The work is planned before any of it starts: walking the active tenants in slug order,
 * each database-mode tenant takes one free place among `maxCachedPools` and its share
 * of free budget slots, until either runs out; the rest are `skippedCap`. Planning first
 * makes the counts exact whatever the timing: a broken tenant that fails fast does not
 * hand its place to a tenant that would otherwise have been skipped.
 */
import type { Org } from '../org.js';
import type { OrgRegistry } from '../registry/org-registry.js';

/** What `TenantPools.prewarm()` did. */
export interface PrewarmReport {
  /** Active tenants in the registry. */
  totalActive: number;
  /** Tenants whose pool now holds at least one open connection. */
  warmed: number;
  /** Tenants whose connection could not be opened (refused, bad secret …). */
  failed: number;
  /** Tenants left cold because the cache of pools or the budget was full. */
  skippedCap: number;
}

/** What a prewarm run needs from TenantPools. */
export interface PrewarmTarget {
  /** Every active org, in slug order. */
  activeOrgs(): Promise<Org[]>;
  /** Free places among the cached pools right now. */
  freePlaces(): number;
  /** Free budget slots right now. */
  freeSlots(): number;
  /** Slots warming one tenant takes: `max(1, perTenantMinConnections)`. */
  slotsPerTenant(): number;
  /** Whether a database-mode tenant's pool is already cached (it needs no new place). */
  isCached(slug: string): boolean;
  /** Warms one tenant; resolves to whether a connection is open, rejects on failure. */
  warm(org: Org): Promise<boolean>;
  /** Reports a tenant that failed to warm. */
  onFailure(org: Org, error: unknown): void;
}

/** Runs a prewarm with at most `concurrency` tenants warming at once. */
export async function runPrewarm(target: PrewarmTarget, concurrency: number): Promise<PrewarmReport> {
  const orgs = await target.activeOrgs();
  const report: PrewarmReport = { totalActive: orgs.length, warmed: 0, failed: 0, skippedCap: 0 };
  const perTenant = target.slotsPerTenant();
  let places = target.freePlaces();
  let slots = target.freeSlots();
  let schemaPoolPlanned = false;
  const planned: Org[] = [];
  for (const org of orgs) {
    if (org.storageMode === 'schema') {
      // Schema-mode tenants share one pool: only the first of them needs slots.
      if (!schemaPoolPlanned) {
        if (slots < 1) {
          report.skippedCap++;
          continue;
        }
        slots -= 1;
        schemaPoolPlanned = true;
      }
      planned.push(org);
      continue;
    }
    const cached = target.isCached(org.slug);
    if ((!cached && places < 1) || slots < perTenant) {
      report.skippedCap++;
      continue;
    }
    if (!cached) places--;
    slots -= perTenant;
    planned.push(org);
  }

  let next = 0;
  const runner = async () => {
    while (next < planned.length) {
      const org = planned[next++]!;
      try {
        if (await target.warm(org)) report.warmed++;
        // Someone else took the free slots in the meantime: the tenant stays cold.
        else report.skippedCap++;
      } catch (err) {
        report.failed++;
        target.onFailure(org, err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, planned.length) }, runner));
  return report;
}

/** Every active org of the registry in slug order, read a page at a time. */
export async function activeOrgs(registry: OrgRegistry, pageSize = 500): Promise<Org[]> {
  const orgs: Org[] = [];
  for (;;) {
    const after = orgs.at(-1)?.slug;
    const page = await registry.list({ active: true, limit: pageSize, ...(after ? { after } : {}) });
    orgs.push(...page);
    if (page.length < pageSize) return orgs;
  }
}
