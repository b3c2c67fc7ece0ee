/**
 * The global budget of TenantPools, checked from the servers' side: never more connections
 * than `maxConnections`, idle connections reclaimed for other pools, slots moving on
 * release, and tryAcquire never waiting for a slot (issue 3, items 1, 2, 3, 14).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Org } from '../../../src/tenancy/org.js';
import { TenantPools } from '../../../src/tenancy/tenant-pools/tenant-pools.js';
import { mysqlDatabase, type PgWorld, pgWorld, sampleMax, slugs } from '../../support/pools-fixture.js';
import { until } from '../../support/wait.js';

let world: PgWorld;
let tenantDb: { name: string; url: string };

beforeAll(async () => {
  world = await pgWorld();
  tenantDb = await world.createDatabase('tp_budget');
});
afterAll(async () => {
  await world.cleanup();
});

async function databaseTenants(prefix: string, n: number, url: string): Promise<string[]> {
  const names = slugs(prefix, n);
  await world.addOrgs(names.map((slug) => ({ slug, storageMode: 'database', databaseUrl: url })));
  return names;
}

// 200 concurrent acquirers over 40 tenants, each running a query that holds the connection
// for a moment, so pools compete for slots the whole time.
async function storm(pools: TenantPools, tenants: string[]): Promise<number> {
  let done = 0;
  await Promise.all(
    Array.from({ length: 200 }, async (_, i) => {
      const slug = tenants[(i * 7) % tenants.length]!;
      await pools.withTenant(slug, (db) => db.query('select pg_sleep(0.002)'));
      done++;
    }),
  );
  return done;
}

describe('global budget', () => {
  it('never lets the Postgres server see more than maxConnections, sampled throughout', async () => {
    const tenants = await databaseTenants('bud', 40, tenantDb.url);
    const pools = await TenantPools.open({ registry: world.registry, maxConnections: 8 });
    const budgetSeen: number[] = [];
    const watch = setInterval(() => budgetSeen.push(pools.stats().budget.open), 1);
    const sampler = sampleMax(() => world.serverConnections(tenantDb.name));
    try {
      const done = await storm(pools, tenants);
      expect(done).toBe(200);
    } finally {
      clearInterval(watch);
    }
    const seen = await sampler.stop();
    expect(seen.samples).toBeGreaterThan(10);
    expect(seen.max).toBeGreaterThan(0);
    expect(seen.max).toBeLessThanOrEqual(8);
    expect(Math.max(...budgetSeen)).toBeLessThanOrEqual(8);
    const stats = pools.stats();
    expect(stats.counters.acquires).toBe(200);
    // 40 tenants through 8 slots: slots must have moved between pools.
    expect(stats.counters.connects).toBeGreaterThan(8);
    await pools.close();
    expect(await world.serverConnections(tenantDb.name)).toBe(0);
  });

  it('never lets MariaDB see more than maxConnections (processlist), sampled throughout', async () => {
    const db = await mysqlDatabase();
    try {
      const tenants = await databaseTenants('bud-my', 40, db.url);
      const pools = await TenantPools.open({ registry: world.registry, maxConnections: 8 });
      const sampler = sampleMax(() => db.serverConnections());
      let done = 0;
      await Promise.all(
        Array.from({ length: 200 }, async (_, i) => {
          const slug = tenants[(i * 7) % tenants.length]!;
          await pools.withTenant(slug, (conn) => conn.query('select sleep(0.002)'));
          done++;
        }),
      );
      const seen = await sampler.stop();
      expect(done).toBe(200);
      expect(seen.samples).toBeGreaterThan(10);
      expect(seen.max).toBeGreaterThan(0);
      expect(seen.max).toBeLessThanOrEqual(8);
      await pools.close();
    } finally {
      await db.drop();
    }
  });
});

describe('slots move to where they are needed', () => {
  it('reclaims the least recently used idle connection of another pool at once', async () => {
    const [a, b, c] = await databaseTenants('recl', 3, tenantDb.url);
    // A day-long idle timeout: only a reclaim can free a slot here.
    const pools = await TenantPools.open({
      registry: world.registry,
      maxConnections: 2,
      idleTimeoutMs: 86_400_000,
    });
    const events: string[] = [];
    pools.on('connection:open', (e) => events.push(`open ${e.slug}`));
    pools.on('connection:close', (e) => events.push(`close ${e.slug} ${e.reason}`));
    await pools.withTenant(a!, (db) => db.query('select 1'));
    await pools.withTenant(b!, (db) => db.query('select 1'));
    expect(pools.stats().budget).toMatchObject({ open: 2, idle: 2, inUse: 0 });
    const rows = await pools.withTenant(c!, (db) => db.query<{ one: number }>('select 1 as one'));
    expect(rows).toEqual([{ one: 1 }]);
    // a was idle the longest: its connection went, b's stayed.
    expect(events).toEqual([`open ${a}`, `open ${b}`, `close ${a} reclaim`, `open ${c}`]);
    expect(pools.stats().counters.reclaims).toBe(1);
    expect(await world.serverConnections(tenantDb.name)).toBe(2);
    await pools.close();
  });

  it('closes a released connection when another pool waits, and hands it the slot', async () => {
    const [a, b] = await databaseTenants('move', 2, tenantDb.url);
    const pools = await TenantPools.open({ registry: world.registry, maxConnections: 1 });
    const events: string[] = [];
    pools.on('connection:open', (e) => events.push(`open ${e.slug}`));
    pools.on('connection:close', (e) => events.push(`close ${e.slug} ${e.reason}`));
    const held = await pools.acquire(a!);
    const waiting = pools.acquire(b!);
    await until(() => pools.stats().budget.waiting === 1);
    held.release();
    const got = await waiting;
    expect(got.slug).toBe(b);
    expect(events).toEqual([`open ${a}`, `close ${a} handover`, `open ${b}`]);
    expect(pools.stats().pools.find((p) => p.slug === a)?.open).toBe(0);
    got.release();
    expect(await world.serverConnections(tenantDb.name)).toBe(1);
    await pools.close();
  });
});

describe('tryAcquire', () => {
  it('lends idle or budgeted connections, reclaims idle ones, and never waits for a slot', async () => {
    const [a, b, c] = await databaseTenants('try', 3, tenantDb.url);
    const org = (slug: string | undefined): Promise<Org> => world.registry.get(slug!);
    const pools = await TenantPools.open({
      registry: world.registry,
      maxConnections: 2,
      perTenantMaxConnections: 1,
    });
    const first = await pools.tryAcquire(a!);
    expect(first?.slug).toBe(a);
    // a's pool is at its maximum, with its only connection lent.
    expect(await pools.tryAcquire(a!)).toBeNull();
    const second = await pools.tryAcquire(await org(b));
    expect(second?.slug).toBe(b);
    // Budget full, nothing idle anywhere: null, and nothing queued.
    expect(await pools.tryAcquire(c!)).toBeNull();
    expect(pools.stats().budget.waiting).toBe(0);
    second?.release();
    // b's connection is idle now: c reclaims it.
    const third = await pools.tryAcquire(c!);
    expect(third?.slug).toBe(c);
    expect(pools.stats().counters.reclaims).toBe(1);
    // Someone queued for a slot: tryAcquire does not overtake them.
    const queued = pools.acquire(b!);
    await until(() => pools.stats().budget.waiting === 1);
    expect(await pools.tryAcquire(b!)).toBeNull();
    first?.release();
    (await queued).release();
    third?.release();
    await pools.close();
  });
});
