/**
 * Connection lifecycle: the idle timeout closes idle connections, the max lifetime
 * recycles them, perTenantMinConnections is kept after prewarm, and a rotated secret is
 * picked up after `invalidate` or a lifetime recycle (issue 3, item 9).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloseReason } from '../../../src/tenancy/pool/connection-pool.js';
import { TenantPools } from '../../../src/tenancy/tenant-pools/tenant-pools.js';
import { type PgWorld, pgWorld, slugs } from '../../support/pools-fixture.js';
import { uniqueName } from '../../support/services.js';
import { until } from '../../support/wait.js';

let world: PgWorld;
let tenantDb: { name: string; url: string };

beforeAll(async () => {
  world = await pgWorld();
  tenantDb = await world.createDatabase('tp_life');
});
afterAll(async () => {
  await world.cleanup();
});

async function tenant(prefix: string, databaseUrl = tenantDb.url): Promise<string> {
  const [slug] = slugs(prefix, 1) as [string];
  await world.addOrgs([{ slug, storageMode: 'database', databaseUrl }]);
  return slug;
}

function closeLog(pools: TenantPools): CloseReason[] {
  const reasons: CloseReason[] = [];
  pools.on('connection:close', (e) => reasons.push(e.reason));
  return reasons;
}

const currentDatabase = (pools: TenantPools, slug: string) =>
  pools.withTenant(
    slug,
    async (db) => (await db.query<{ db: string }>('select current_database() as db'))[0]?.db,
  );

describe('connection lifecycle', () => {
  it('closes connections idle for idleTimeoutMs', async () => {
    const slug = await tenant('idle');
    const pools = await TenantPools.open({ registry: world.registry, idleTimeoutMs: 100 });
    const reasons = closeLog(pools);
    await Promise.all([1, 2].map(() => pools.withTenant(slug, (db) => db.query('select pg_sleep(0.01)'))));
    await until(() => reasons.length === 2);
    expect(reasons).toEqual(['idle-timeout', 'idle-timeout']);
    expect(await world.serverConnections(tenantDb.name)).toBe(0);
    expect(pools.stats().pools[0]).toMatchObject({ slug, open: 0 });
    await pools.close();
  });

  it('recycles connections older than maxLifetimeMs, idle or lent', async () => {
    const slug = await tenant('life');
    const pools = await TenantPools.open({ registry: world.registry, maxLifetimeMs: 150 });
    const reasons = closeLog(pools);
    await pools.withTenant(slug, (db) => db.query('select 1'));
    await until(() => reasons.length === 1);
    // A connection lent past its lifetime is closed on release instead of reused.
    const db = await pools.acquire(slug);
    await new Promise((resolve) => setTimeout(resolve, 200));
    db.release();
    await until(() => reasons.length === 2);
    expect(reasons).toEqual(['lifetime', 'lifetime']);
    expect(pools.stats().counters.recycles).toBe(2);
    expect(pools.stats().budget.open).toBe(0);
    await pools.close();
  });

  it('keeps perTenantMinConnections open after prewarm, through idle timeouts and recycles', async () => {
    // A registry of its own: prewarm warms every active tenant it holds.
    const own = await pgWorld();
    try {
      const db = await own.createDatabase('tp_min');
      const [slug] = slugs('min', 1) as [string];
      await own.addOrgs([{ slug, storageMode: 'database', databaseUrl: db.url }]);
      const pools = await TenantPools.open({
        registry: own.registry,
        perTenantMinConnections: 2,
        perTenantMaxConnections: 3,
        idleTimeoutMs: 50,
        maxLifetimeMs: 2000,
      });
      const reasons = closeLog(pools);
      const report = await pools.prewarm();
      expect(report).toEqual({ totalActive: 1, warmed: 1, failed: 0, skippedCap: 0 });
      expect(await own.serverConnections(db.name)).toBe(2);
      // A burst opens a third connection; the idle timeout takes it back down to two.
      const burst = await Promise.all([1, 2, 3].map(() => pools.acquire(slug)));
      for (const conn of burst) conn.release();
      await until(() => reasons.includes('idle-timeout'));
      // The close event comes once the connection is gone: the server sees the minimum.
      expect(await own.serverConnections(db.name)).toBe(2);
      // Lifetimes run out; the pool tops itself back up to its minimum each time. (While a
      // replacement is being opened the server may briefly see one more or one fewer, so
      // the steady state is awaited rather than sampled.)
      await until(() => reasons.filter((r) => r === 'lifetime').length >= 2);
      await until(() => {
        const pool = pools.stats().pools[0];
        return pool?.open === 2 && pool.idle === 2;
      });
      await until(async () => (await own.serverConnections(db.name)) === 2);
      // Only the burst's extra connection ever timed out: the minimum never did.
      expect(reasons.filter((r) => r === 'idle-timeout')).toHaveLength(1);
      await pools.close();
    } finally {
      await own.cleanup();
    }
  });

  it('picks up a rotated secret after invalidate', async () => {
    const other = await world.createDatabase('tp_rot');
    const variable = uniqueName('TP_SECRET').toUpperCase();
    process.env[variable] = tenantDb.url;
    try {
      const slug = await tenant('rot', `env://${variable}`);
      const pools = await TenantPools.open({ registry: world.registry });
      expect(await currentDatabase(pools, slug)).toBe(tenantDb.name);
      process.env[variable] = other.url;
      // Until invalidated, the pool keeps the URL it resolved.
      expect(await currentDatabase(pools, slug)).toBe(tenantDb.name);
      await pools.invalidate(slug);
      expect(await currentDatabase(pools, slug)).toBe(other.name);
      expect(pools.stats().counters.poolEvictions).toBe(1);
      await pools.close();
    } finally {
      delete process.env[variable];
    }
  });

  it('picks up a rotated secret when a connection is recycled for its lifetime', async () => {
    const other = await world.createDatabase('tp_rot');
    const variable = uniqueName('TP_SECRET').toUpperCase();
    process.env[variable] = tenantDb.url;
    try {
      const slug = await tenant('rot-life', `env://${variable}`);
      const pools = await TenantPools.open({ registry: world.registry, maxLifetimeMs: 150 });
      const reasons = closeLog(pools);
      expect(await currentDatabase(pools, slug)).toBe(tenantDb.name);
      process.env[variable] = other.url;
      await until(() => reasons.includes('lifetime'));
      expect(await currentDatabase(pools, slug)).toBe(other.name);
      await pools.close();
    } finally {
      delete process.env[variable];
    }
  });

  it('rebuilds the pool when the org moves to another database, closing the old one on release', async () => {
    const other = await world.createDatabase('tp_move');
    const slug = await tenant('moved');
    const pools = await TenantPools.open({ registry: world.registry });
    const evicted: string[] = [];
    const closed: string[] = [];
    pools.on('pool:evict', (e) => evicted.push(e.reason));
    pools.on('connection:close', (e) => closed.push(e.reason));
    const lent = await pools.acquire(slug);
    expect(await currentDatabase(pools, slug)).toBe(tenantDb.name);
    await world.registry.update(slug, { databaseUrl: other.url });
    // The registry in these tests does not cache: the next acquire sees the new URL.
    expect(await currentDatabase(pools, slug)).toBe(other.name);
    expect(evicted).toEqual(['config-change']);
    // The old pool's idle connection closed with it; the lent one closes when released.
    await until(() => closed.length === 1);
    lent.release();
    await until(() => closed.length === 2);
    expect(closed).toEqual(['evict', 'evict']);
    expect(await world.serverConnections(tenantDb.name)).toBe(0);
    await pools.close();
  });
});
