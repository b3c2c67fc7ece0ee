/**
 * Waiting for a connection: first come first served within a pool and across pools,
 * AcquireTimeoutError after acquireTimeoutMs, and an aborted signal that ends the wait
 * with its reason and leaks no slot (issue 3, item 4).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcquireTimeoutError } from '../../../src/reporting/errors.js';
import { TenantPools } from '../../../src/tenancy/tenant-pools/tenant-pools.js';
import { addDatabaseTenants, type PgWorld, pgWorld, slugs } from '../../support/pools-fixture.js';
import { until } from '../../support/wait.js';

let world: PgWorld;
let tenantDb: { name: string; url: string };

beforeAll(async () => {
  world = await pgWorld();
  tenantDb = await world.createDatabase('tp_wait');
});
afterAll(async () => {
  await world.cleanup();
});

const tenants = (prefix: string, n: number) => addDatabaseTenants(world, tenantDb.url, prefix, n);

describe('waiting for a connection', () => {
  it("serves one pool's waiters first come first served", async () => {
    const [a] = await tenants('fifo', 1);
    const pools = await TenantPools.open({
      registry: world.registry,
      maxConnections: 1,
      perTenantMaxConnections: 1,
    });
    const held = await pools.acquire(a!);
    const order: number[] = [];
    const waiters = [1, 2, 3, 4, 5].map((n) =>
      pools.acquire(a!).then((db) => {
        order.push(n);
        db.release();
      }),
    );
    await until(() => pools.stats().pools[0]?.waiting === 5);
    held.release();
    await Promise.all(waiters);
    expect(order).toEqual([1, 2, 3, 4, 5]);
    // One connection served all six: nothing was closed or reopened.
    expect(pools.stats().counters.connects).toBe(1);
    await pools.close();
  });

  it('serves waiters of different pools in the order they asked for a slot', async () => {
    const [a, b, c, d] = await tenants('fifo-x', 4);
    const pools = await TenantPools.open({ registry: world.registry, maxConnections: 1 });
    const held = await pools.acquire(a!);
    const order: string[] = [];
    const waiting: Promise<void>[] = [];
    for (const slug of [b!, c!, d!]) {
      waiting.push(
        pools.acquire(slug).then((db) => {
          order.push(db.slug);
          db.release();
        }),
      );
      // Each one queued before the next asks.
      await until(() => pools.stats().budget.waiting === waiting.length);
    }
    held.release();
    await Promise.all(waiting);
    expect(order).toEqual([b, c, d]);
    await pools.close();
  });

  it('ends a wait with AcquireTimeoutError after acquireTimeoutMs and counts it', async () => {
    const [a, b] = await tenants('tmo', 2);
    const pools = await TenantPools.open({
      registry: world.registry,
      maxConnections: 1,
      acquireTimeoutMs: 100,
    });
    const timeouts: string[] = [];
    pools.on('acquire:timeout', (e) => timeouts.push(e.slug));
    // tryAcquire never waits, so the short acquireTimeoutMs only applies to b.
    const held = (await pools.tryAcquire(a!))!;
    const error = await pools.acquire(b!).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(AcquireTimeoutError);
    expect((error as AcquireTimeoutError).code).toBe('ACQUIRE_TIMEOUT');
    expect((error as AcquireTimeoutError).slug).toBe(b);
    expect(timeouts).toEqual([b]);
    const stats = pools.stats();
    expect(stats.counters.timeouts).toBe(1);
    // The timed-out request left the queue: nothing waits, the slot is still a's.
    expect(stats.budget).toMatchObject({ open: 1, inUse: 1, waiting: 0 });
    held.release();
    await pools.close();
  });

  it("ends a wait with the signal's reason and leaks no slot", async () => {
    const [a, b, c] = await tenants('abort', 3);
    const pools = await TenantPools.open({ registry: world.registry, maxConnections: 1 });
    const held = await pools.acquire(a!);
    const controller = new AbortController();
    const reason = new Error('job cancelled');
    const waiting = pools.acquire(b!, { signal: controller.signal });
    await until(() => pools.stats().budget.waiting === 1);
    controller.abort(reason);
    await expect(waiting).rejects.toBe(reason);
    expect(pools.stats().budget).toMatchObject({ open: 1, waiting: 0 });
    expect(pools.stats().pools.find((p) => p.slug === b)).toMatchObject({ waiting: 0, open: 0 });
    // An already aborted signal fails before queueing.
    await expect(pools.acquire(b!, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    held.release();
    // The only slot is free for anyone: c gets it (by reclaiming a's idle connection).
    const next = await pools.acquire(c!);
    expect(pools.stats().budget).toMatchObject({ open: 1, inUse: 1, waiting: 0 });
    next.release();
    await pools.close();
    expect(await world.serverConnections(tenantDb.name)).toBe(0);
  });

  it('bounds the secret resolution by acquireTimeoutMs and the signal', async () => {
    const [a] = slugs('slowsec', 1) as [string];
    await world.addOrgs([{ slug: a, storageMode: 'database', databaseUrl: 'vault://tenants/slow' }]);
    let calls = 0;
    // A secrets engine that never answers.
    const secrets = {
      resolve: () => {
        calls++;
        return new Promise<string>(() => {});
      },
    };
    const pools = await TenantPools.open({ registry: world.registry, secrets, acquireTimeoutMs: 100 });
    try {
      const error = await pools.acquire(a).catch((err: unknown) => err);
      expect(error).toBeInstanceOf(AcquireTimeoutError);
      expect(pools.stats().counters.timeouts).toBe(1);
      const patient = await TenantPools.open({ registry: world.registry, secrets, acquireTimeoutMs: 60_000 });
      try {
        const controller = new AbortController();
        const reason = new Error('job cancelled');
        const waiting = patient.acquire(a, { signal: controller.signal });
        await until(() => calls === 2);
        controller.abort(reason);
        await expect(waiting).rejects.toBe(reason);
      } finally {
        await patient.close();
      }
      expect(pools.stats().pools).toEqual([]);
    } finally {
      await pools.close();
    }
  });
});
