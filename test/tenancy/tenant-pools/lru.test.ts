/**
 * The LRU of pools: with maxCachedPools full, a new tenant evicts the least recently used
 * pool nobody is using and its connections close; a pool with a connection lent or a
 * waiter is never evicted; when every pool is busy the new tenant waits, then gets
 * PoolCapacityError (issue 3, item 5).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PoolCapacityError } from '../../../src/reporting/errors.js';
import { TenantPools } from '../../../src/tenancy/tenant-pools/tenant-pools.js';
import {
  addDatabaseTenants,
  type PgWorld,
  pgWorld,
  slugs,
  sqliteFolder,
} from '../../support/pools-fixture.js';
import { until } from '../../support/wait.js';

let world: PgWorld;
let tenantDb: { name: string; url: string };

beforeAll(async () => {
  world = await pgWorld();
  tenantDb = await world.createDatabase('tp_lru');
});
afterAll(async () => {
  await world.cleanup();
});

const tenants = (prefix: string, n: number) => addDatabaseTenants(world, tenantDb.url, prefix, n);

function open(extra: { acquireTimeoutMs?: number } = {}) {
  return TenantPools.open({ registry: world.registry, maxCachedPools: 3, maxConnections: 10, ...extra });
}

const cached = (pools: TenantPools) => pools.stats().pools.map((p) => p.slug);

describe('LRU of pools', () => {
  it('evicts the least recently used idle pool and closes its connections', async () => {
    const [a, b, c, d] = await tenants('lru', 4);
    const pools = await open();
    const evicted: string[] = [];
    const closed: string[] = [];
    pools.on('pool:evict', (e) => evicted.push(`${e.slug} ${e.reason}`));
    pools.on('connection:close', (e) => closed.push(`${e.slug} ${e.reason}`));
    for (const slug of [a, b, c]) await pools.withTenant(slug!, (db) => db.query('select 1'));
    // Using a again makes b the least recently used.
    await pools.withTenant(a!, (db) => db.query('select 1'));
    await pools.withTenant(d!, (db) => db.query('select 1'));
    expect(evicted).toEqual([`${b} lru`]);
    await until(() => closed.length === 1);
    expect(closed).toEqual([`${b} evict`]);
    expect(cached(pools).sort()).toEqual([a, c, d].sort());
    expect(pools.stats().counters.poolEvictions).toBe(1);
    expect(await world.serverConnections(tenantDb.name)).toBe(3);
    await pools.close();
  });

  it('keeps the most recently used pool when every use falls in one millisecond', async () => {
    const [t4, t5, t6] = await tenants('same-ms', 3);
    const pools = await TenantPools.open({ registry: world.registry, maxCachedPools: 2, maxConnections: 10 });
    const evicted: string[] = [];
    pools.on('pool:evict', (e) => evicted.push(e.slug as string));
    const use = (slug: string) => pools.withTenant(slug, (db) => db.query('select 1'));
    try {
      // The connections are open first; then the clock stands still, so every use below
      // happens in the same millisecond, as fast callers' uses do.
      await use(t4!);
      await use(t5!);
      vi.useFakeTimers({ toFake: ['Date'] });
      await use(t4!);
      await use(t5!);
      await use(t4!);
      await use(t6!);
    } finally {
      vi.useRealTimers();
    }
    // t4 was used last before t6 came: t5 is the least recently used.
    expect(evicted).toEqual([t5]);
    expect(cached(pools).sort()).toEqual([t4, t6].sort());
    await pools.close();
  });

  it('never evicts a pool with a connection lent or a caller waiting', async () => {
    const [a, b, c, d, e] = await tenants('busy', 5);
    const pools = await TenantPools.open({
      registry: world.registry,
      maxCachedPools: 3,
      maxConnections: 10,
      perTenantMaxConnections: 1,
    });
    const evicted: string[] = [];
    pools.on('pool:evict', (ev) => evicted.push(ev.slug as string));
    const heldA = await pools.acquire(a!); // a: oldest, but lent
    const heldB = await pools.acquire(b!); // b: lent, and someone waits for it
    const waitingB = pools.acquire(b!);
    await until(() => pools.stats().pools.find((p) => p.slug === b)?.waiting === 1);
    await pools.withTenant(c!, (db) => db.query('select 1'));
    await pools.withTenant(d!, (db) => db.query('select 1'));
    expect(evicted).toEqual([c]);
    heldB.release();
    (await waitingB).release();
    // b was released last, so d is now the least recently used idle pool; a is still lent.
    await pools.withTenant(e!, (db) => db.query('select 1'));
    expect(evicted).toEqual([c, d]);
    expect(cached(pools).sort()).toEqual([a, b, e].sort());
    heldA.release();
    await pools.close();
  });

  it('makes a new tenant wait while every pool is busy, then PoolCapacityError', async () => {
    const [a, b, c, d] = await tenants('full', 4);
    const pools = await open({ acquireTimeoutMs: 150 });
    // tryAcquire never waits, so the short acquireTimeoutMs only applies to d.
    const held = await Promise.all([a, b, c].map(async (slug) => (await pools.tryAcquire(slug!))!));
    expect(held.map((db) => db.slug)).toEqual([a, b, c]);
    const error = await pools.acquire(d!).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(PoolCapacityError);
    expect((error as PoolCapacityError).code).toBe('POOL_CAPACITY');
    expect(cached(pools)).not.toContain(d);
    expect(pools.stats().counters.timeouts).toBe(1);
    for (const db of held) db.release();
    await pools.close();
  });

  it('lets a new tenant waiting for a place have the first pool released', async () => {
    const [a, b, c, d] = await tenants('room', 4);
    const pools = await open();
    const held = await Promise.all([a, b, c].map((slug) => pools.acquire(slug!)));
    const waiting = pools.acquire(d!);
    // Give the acquire time to queue (it gets the same answer if it has not yet).
    await new Promise((resolve) => setTimeout(resolve, 20));
    held[1]!.release();
    const got = await waiting;
    expect(got.slug).toBe(d);
    expect(cached(pools).sort()).toEqual([a, c, d].sort());
    got.release();
    held[0]!.release();
    held[2]!.release();
    await pools.close();
  });

  it('serves every caller of a new tenant that waited for a place, from the one pool built', async () => {
    const [a, x] = await tenants('same', 2);
    const orgX = await world.registry.get(x!);
    const pools = await TenantPools.open({
      registry: world.registry,
      maxCachedPools: 1,
      maxConnections: 10,
      acquireTimeoutMs: 8_000,
    });
    const evicted: string[] = [];
    pools.on('pool:evict', (event) => evicted.push(`${event.slug} ${event.reason}`));
    try {
      const held = await pools.acquire(a!);
      // An Org and a literal URL need no I/O: after one macrotask both callers wait.
      const first = pools.acquire(orgX);
      const second = pools.acquire(orgX);
      await new Promise((resolve) => setImmediate(resolve));
      held.release();
      const [one, two] = await Promise.all([first, second]);
      expect([one.slug, two.slug]).toEqual([x, x]);
      // One place freed, one pool built, both callers served from it; a's pool alone left.
      expect(evicted).toEqual([`${a} lru`]);
      expect(cached(pools)).toEqual([x]);
      expect(pools.stats().counters.timeouts).toBe(0);
      one.release();
      two.release();
    } finally {
      await pools.close();
    }
  });

  it('never lends from a pool evicted between its lookup and the checkout', async () => {
    // Many callers over more tenants than places: pools are evicted the moment they
    // settle, so a caller that looked its pool up must check out in the same turn.
    const files = sqliteFolder();
    try {
      const names = slugs('race', 4);
      await world.addOrgs(
        names.map((slug) => ({ slug, storageMode: 'database' as const, databaseUrl: files.url(slug) })),
      );
      // Orgs rather than slugs: with no registry round trip, callers' continuations
      // interleave within microtasks, where the gap would be.
      const orgs = await Promise.all(names.map((slug) => world.registry.get(slug)));
      const pools = await TenantPools.open({
        registry: world.registry,
        maxCachedPools: 2,
        maxConnections: 4,
      });
      const results = await Promise.allSettled(
        Array.from({ length: 400 }, (_, i) =>
          pools.withTenant(orgs[i % orgs.length]!, (db) => db.query('select 1 as one')),
        ),
      );
      const failures = results.filter((r) => r.status === 'rejected');
      expect(failures.map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
      expect(pools.stats().counters.acquires).toBe(400);
      expect(pools.stats().counters.poolEvictions).toBeGreaterThan(0);
      await pools.close();
    } finally {
      files.remove();
    }
  });
});
