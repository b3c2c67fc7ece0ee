/**
 * The hit path: a checkout of a database-mode tenant whose org is known (the registry's
 * cache holds it, or the Org is given) and whose pool holds a ready idle connection lends
 * it without waiting for anything. It keeps every promise of the long way: the registry's
 * changes are seen, the LRU counts it as a use, a released lease is dead, a signal and bad
 * options are still checked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClosedError, TenantInactiveError, ValidationError } from '../../../src/reporting/errors.js';
import type { Org } from '../../../src/tenancy/org.js';
import { OrgRegistry } from '../../../src/tenancy/registry/org-registry.js';
import { TenantPools } from '../../../src/tenancy/tenant-pools/tenant-pools.js';
import { addDatabaseTenants, type PgWorld, pgWorld } from '../../support/pools-fixture.js';

let world: PgWorld;
let tenantDb: { name: string; url: string };

beforeAll(async () => {
  // Lookups by slug are answered from the registry's cache, as in production.
  world = await pgWorld({ cacheTtlMs: 600_000 });
  tenantDb = await world.createDatabase('tp_hit');
});
afterAll(async () => {
  await world.cleanup();
});

const tenants = (prefix: string, n: number) => addDatabaseTenants(world, tenantDb.url, prefix, n);

async function backendPid(pools: TenantPools, slugOrOrg: string | Org): Promise<number> {
  return pools.withTenant(slugOrOrg, async (db) => {
    const [row] = await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    return Number(row?.pid);
  });
}

describe('TenantPools hit path', () => {
  it('lends the same idle connection again, by slug and given the Org, and counts every checkout', async () => {
    const [slug] = await tenants('reuse', 1);
    await using pools = await TenantPools.open({ registry: world.registry, maxConnections: 4 });
    const org = await world.registry.get(slug!);
    const pids = [
      await backendPid(pools, slug!),
      await backendPid(pools, slug!),
      await backendPid(pools, org),
      await backendPid(pools, org),
    ];
    expect(new Set(pids).size).toBe(1);
    const stats = pools.stats();
    expect(stats.counters).toMatchObject({ acquires: 4, connects: 1 });
    expect(stats.pools).toEqual([expect.objectContaining({ slug, open: 1, inUse: 0, idle: 1 })]);
    expect(stats.budget).toMatchObject({ open: 1, inUse: 0, idle: 1 });
  });

  it('makes a released lease unusable, and releasing it twice changes nothing', async () => {
    const [slug] = await tenants('released', 1);
    await using pools = await TenantPools.open({ registry: world.registry, maxConnections: 4 });
    (await pools.acquire(slug!)).release();
    const lease = await pools.acquire(slug!);
    expect(pools.stats().budget).toMatchObject({ inUse: 1, idle: 0 });
    lease.release();
    lease.release();
    await expect(lease.query('select 1')).rejects.toBeInstanceOf(ClosedError);
    expect(pools.stats().budget).toMatchObject({ open: 1, inUse: 0, idle: 1 });
    // The next checkout gets the connection, still healthy.
    const again = await pools.acquire(slug!);
    expect(await again.query('select 1 as one')).toEqual([{ one: 1 }]);
    again.release();
    expect(pools.stats().counters).toMatchObject({ acquires: 3, connects: 1 });
  });

  it('sees a deactivation and a move to another database made through the registry', async () => {
    const [moved, deactivated] = await tenants('changed', 2);
    const otherDb = await world.createDatabase('tp_hit_moved');
    await using pools = await TenantPools.open({ registry: world.registry, maxConnections: 4 });
    const evicted: string[] = [];
    pools.on('pool:evict', (e) => evicted.push(`${e.slug} ${e.reason}`));
    const database = (slug: string) =>
      pools.withTenant(
        slug,
        async (db) => (await db.query<{ db: string }>('SELECT current_database() AS db'))[0]?.db,
      );
    // Twice each: the second checkout is a hit, the org's answer cached by the first.
    for (let i = 0; i < 2; i++) {
      expect(await database(moved!)).toBe(tenantDb.name);
      expect(await database(deactivated!)).toBe(tenantDb.name);
    }
    await world.registry.update(moved!, { databaseUrl: otherDb.url });
    await world.registry.deactivate(deactivated!);
    expect(await database(moved!)).toBe(otherDb.name);
    expect(evicted).toEqual([`${moved} config-change`]);
    await expect(pools.acquire(deactivated!)).rejects.toBeInstanceOf(TenantInactiveError);
  });

  it('counts a hit as a use of the pool: the least recently used pool is the one evicted', async () => {
    const [a, b, c] = await tenants('lru', 3);
    const orgs = await Promise.all([a, b, c].map((slug) => world.registry.get(slug!)));
    await using pools = await TenantPools.open({
      registry: world.registry,
      maxConnections: 4,
      maxCachedPools: 2,
    });
    const evicted: string[] = [];
    pools.on('pool:evict', (e) => evicted.push(e.slug as string));
    (await pools.acquire(orgs[0]!)).release();
    (await pools.acquire(orgs[1]!)).release();
    // A hit on a: b is now the least recently used.
    (await pools.acquire(orgs[0]!)).release();
    (await pools.acquire(orgs[2]!)).release();
    expect(evicted).toEqual([b]);
    expect(
      pools
        .stats()
        .pools.map((p) => p.slug)
        .sort(),
    ).toEqual([a, c].sort());
  });

  it('still checks the options and the signal when a connection is ready', async () => {
    const [slug] = await tenants('signal', 1);
    await using pools = await TenantPools.open({ registry: world.registry, maxConnections: 4 });
    (await pools.acquire(slug!)).release();
    const controller = new AbortController();
    controller.abort(new Error('gave up'));
    await expect(pools.acquire(slug!, { signal: controller.signal })).rejects.toThrow('gave up');
    await expect(pools.acquire(slug!, null as never)).rejects.toBeInstanceOf(ValidationError);
    expect(pools.stats().counters.acquires).toBe(1);
    expect(pools.stats().budget).toMatchObject({ inUse: 0, idle: 1 });
  });

  it('turns away every checkout once closed, hit or not', async () => {
    const [slug] = await tenants('closed', 1);
    const org = await world.registry.get(slug!);
    const pools = await TenantPools.open({ registry: world.registry, maxConnections: 4 });
    (await pools.acquire(org)).release();
    const closing = pools.close();
    await expect(pools.acquire(org)).rejects.toBeInstanceOf(ClosedError);
    await expect(pools.tryAcquire(slug!)).rejects.toBeInstanceOf(ClosedError);
    await closing;
  });
});

describe('OrgRegistry.cached', () => {
  it('answers from the lookup cache only, once a lookup has settled, and forgets on a change', async () => {
    const [slug] = await tenants('cached', 1);
    expect(world.registry.cached(slug!)).toBeUndefined();
    const lookup = world.registry.find(slug!);
    // Asked, not yet answered: still nothing to read synchronously.
    expect(world.registry.cached(slug!)).toBeUndefined();
    const org = await lookup;
    expect(world.registry.cached(slug!)).toEqual(org);
    expect(await world.registry.find('nobody-here')).toBeNull();
    expect(world.registry.cached('nobody-here')).toBeNull();
    // Not a slug at all: never cached, never an answer.
    expect(await world.registry.find('Not A Slug')).toBeNull();
    expect(world.registry.cached('Not A Slug')).toBeUndefined();
    await world.registry.update(slug!, { weight: 3 });
    expect(world.registry.cached(slug!)).toBeUndefined();
  });

  it('holds nothing when the cache is off', async () => {
    const [slug] = await tenants('uncached', 1);
    await using uncached = await OrgRegistry.open(world.registry.databaseUrl, { cacheTtlMs: 0 });
    expect(await uncached.find(slug!)).toMatchObject({ slug });
    expect(uncached.cached(slug!)).toBeUndefined();
  });
});
