/**
 * prewarm(): exact counts with a broken tenant and a cap smaller than the active tenants,
 * bounded parallelism, and never a connection beyond the budget (issue 3, item 12). Each
 * test has a registry of its own, since prewarm walks every active tenant.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/reporting/logger.js';
import { defaultSecretsResolver, type SecretsResolver } from '../../../src/tenancy/secrets.js';
import { TenantPools } from '../../../src/tenancy/tenant-pools/tenant-pools.js';
import { type PgWorld, pgWorld, slugs } from '../../support/pools-fixture.js';

async function withWorld(fn: (world: PgWorld) => Promise<void>): Promise<void> {
  const world = await pgWorld();
  try {
    await fn(world);
  } finally {
    await world.cleanup();
  }
}

// Counts how many secrets are being resolved at once: each new pool resolves one, so the
// peak is how many tenants were being warmed at the same time.
function countingResolver(): SecretsResolver & { peak: number } {
  const inner = defaultSecretsResolver();
  let inFlight = 0;
  const resolver = {
    peak: 0,
    async resolve(ref: string) {
      inFlight++;
      resolver.peak = Math.max(resolver.peak, inFlight);
      try {
        await new Promise((resolve) => setTimeout(resolve, 20));
        return await inner.resolve(ref);
      } finally {
        inFlight--;
      }
    },
  };
  return resolver;
}

describe('prewarm', () => {
  it('reports exact counts with a broken tenant and a pool cap below the active tenants', () =>
    withWorld(async (world) => {
      const db = await world.createDatabase('tp_pw');
      const [broken] = slugs('aa', 1) as [string];
      const good = slugs('pw', 5);
      const [inactive] = slugs('zz', 1) as [string];
      await world.addOrgs([
        { slug: broken, storageMode: 'database', databaseUrl: 'postgres://postgres@127.0.0.1:1/nowhere' },
        ...good.map((slug) => ({ slug, storageMode: 'database' as const, databaseUrl: db.url })),
        { slug: inactive, storageMode: 'database', databaseUrl: db.url, active: false },
      ]);
      const secrets = countingResolver();
      const pools = await TenantPools.open({
        registry: world.registry,
        secrets,
        maxCachedPools: 4,
        maxConnections: 10,
        prewarmConcurrency: 2,
      });
      const failures: (string | null)[] = [];
      pools.on('error', (e) => failures.push(e.slug));
      const report = await pools.prewarm();
      // Slug order: the broken tenant and the first three good ones take the 4 places.
      expect(report).toEqual({ totalActive: 6, warmed: 3, failed: 1, skippedCap: 2 });
      expect(pools.lastPrewarm).toEqual(report);
      expect(failures).toEqual([broken]);
      expect(secrets.peak).toBe(2);
      expect(
        pools
          .stats()
          .pools.filter((p) => p.open > 0)
          .map((p) => p.slug)
          .sort(),
      ).toEqual(good.slice(0, 3));
      expect(await world.serverConnections(db.name)).toBe(3);
      await pools.close();
    }));

  it('logs a tenant whose database refuses connections once, where the connect failed', () =>
    withWorld(async (world) => {
      const [broken] = slugs('ab', 1) as [string];
      await world.addOrgs([
        { slug: broken, storageMode: 'database', databaseUrl: 'postgres://postgres@127.0.0.1:1/nowhere' },
      ]);
      const lines: { slug?: string; msg: string; error?: string; err?: unknown }[] = [];
      const destination = new Writable({
        write(chunk, _encoding, done) {
          for (const line of String(chunk).split('\n')) if (line.trim()) lines.push(JSON.parse(line));
          done();
        },
      });
      const pools = await TenantPools.open({
        registry: world.registry,
        logger: createLogger({ level: 'warn', destination }),
      });
      const failures: (string | null)[] = [];
      pools.on('error', (e) => failures.push(e.slug));
      expect(await pools.prewarm()).toMatchObject({ failed: 1 });
      expect(failures).toEqual([broken]);
      const logged = lines.filter((line) => line.slug === broken);
      expect(logged.map((line) => line.msg)).toEqual(['tenant connection failed']);
      // At warn: what failed, the cause said once, no stack.
      expect(logged[0]!.error).toBe(
        `Expected tenant ${JSON.stringify(broken)}'s database at 127.0.0.1:1 to accept a connection, got connect ECONNREFUSED 127.0.0.1:1`,
      );
      expect(logged[0]!.err).toBeUndefined();
      expect(logged[0]).toMatchObject({ code: 'TENANT_CONNECTION' });
      await pools.close();
    }));

  it('stays inside the budget when it is smaller than the active tenants', () =>
    withWorld(async (world) => {
      const db = await world.createDatabase('tp_pw');
      const tenants = slugs('pwb', 5);
      await world.addOrgs(tenants.map((slug) => ({ slug, storageMode: 'database', databaseUrl: db.url })));
      const pools = await TenantPools.open({ registry: world.registry, maxConnections: 2, prewarm: true });
      expect(pools.lastPrewarm).toEqual({ totalActive: 5, warmed: 2, failed: 0, skippedCap: 3 });
      expect(pools.stats().budget).toMatchObject({ open: 2, idle: 2 });
      expect(await world.serverConnections(db.name)).toBe(2);
      // Nothing was evicted or reclaimed to make room.
      expect(pools.stats().counters).toMatchObject({ poolEvictions: 0, reclaims: 0 });
      await pools.close();
    }));

  it('warms schema-mode tenants through the one shared pool', () =>
    withWorld(async (world) => {
      const tenants = slugs('pws', 3);
      await world.addOrgs(tenants.map((slug) => ({ slug, storageMode: 'schema' })));
      for (const slug of tenants) await world.registry.provision(slug);
      const pools = await TenantPools.open({ registry: world.registry });
      expect(await pools.prewarm()).toEqual({ totalActive: 3, warmed: 3, failed: 0, skippedCap: 0 });
      expect(pools.stats().pools).toEqual([expect.objectContaining({ slug: null, mode: 'schema', open: 1 })]);
      expect(await world.serverConnections(world.registryDb)).toBe(1);
      await pools.close();
    }));
});
