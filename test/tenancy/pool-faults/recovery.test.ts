/**
 * Recovery after a connection attempt or a connection goes away: waiters are woken
 * whenever a pool's total drops, tenants waiting for a cache place are served when a pool
 * settles that way, and several callers of one new tenant share the place its pool took.
 * Network failures come from a TCP proxy the test switches (tcp-proxy.ts), at moments the
 * test chooses: nothing here depends on timing.
 */
import { setImmediate as nextMacrotask } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TenantPools } from '../../../src/tenancy/tenant-pools/tenant-pools.js';
import { type PgWorld, pgWorld, slugs } from '../../support/pools-fixture.js';
import { type TcpProxy, tcpProxy } from '../../support/tcp-proxy.js';
import { until } from '../../support/wait.js';

let world: PgWorld;
let tenantDb: { name: string; url: string };
let proxy: TcpProxy;

beforeAll(async () => {
  world = await pgWorld();
  tenantDb = await world.createDatabase('tp_rec');
  proxy = await tcpProxy();
});
afterAll(async () => {
  await proxy.close();
  await world.cleanup();
});

describe('waking waiters when a pool shrinks', () => {
  it("serves a waiter once a tryAcquire's connect fails and frees the pool's only place", async () => {
    const [a] = slugs('strand', 1) as [string];
    await world.addOrgs([
      { slug: a, storageMode: 'database', databaseUrl: proxy.url(tenantDb.name), maxConnections: 1 },
    ]);
    const pools = await TenantPools.open({
      registry: world.registry,
      maxConnections: 4,
      acquireTimeoutMs: 8_000,
    });
    try {
      proxy.mode = 'hold';
      const trying = pools.tryAcquire(a);
      await until(() => proxy.held === 1);
      const waiting = pools.acquire(a);
      await until(() => pools.stats().pools.find((p) => p.slug === a)?.waiting === 1);
      proxy.mode = 'pass';
      proxy.failHeld();
      await expect(trying).rejects.toThrow();
      // The pool's one place is free again: the waiter gets a connection, not a timeout.
      const db = await waiting;
      expect(await db.query<{ one: number }>('select 1 as one')).toEqual([{ one: 1 }]);
      db.release();
      expect(pools.stats().counters.timeouts).toBe(0);
    } finally {
      proxy.mode = 'pass';
      await pools.close();
    }
  });

  it('gives a tenant waiting for a cache place the pool that settles when its last connect fails', async () => {
    const [a, b] = slugs('cwake', 2) as [string, string];
    await world.addOrgs([
      { slug: a, storageMode: 'database', databaseUrl: proxy.url(tenantDb.name), maxConnections: 2 },
      { slug: b, storageMode: 'database', databaseUrl: tenantDb.url },
    ]);
    const orgB = await world.registry.get(b);
    const pools = await TenantPools.open({
      registry: world.registry,
      maxConnections: 4,
      maxCachedPools: 1,
      acquireTimeoutMs: 8_000,
    });
    try {
      const held = await pools.acquire(a);
      proxy.mode = 'hold';
      const trying = pools.tryAcquire(a);
      await until(() => proxy.held === 1);
      // b's lookup and secret need no I/O (an Org and a literal URL): after one macrotask
      // it waits for a place, a's pool being busy.
      const waitingB = pools.acquire(orgB);
      await nextMacrotask();
      held.release();
      proxy.mode = 'pass';
      proxy.failHeld();
      await expect(trying).rejects.toThrow();
      const db = await waitingB;
      expect(await db.query<{ one: number }>('select 1 as one')).toEqual([{ one: 1 }]);
      db.release();
      expect(pools.stats().pools.map((p) => p.slug)).toEqual([b]);
    } finally {
      proxy.mode = 'pass';
      await pools.close();
    }
  });
});

describe('closing over a silent network', () => {
  it("frees the slot of a connection whose close never hears back, for another tenant's acquire", async () => {
    const [a, b] = slugs('hang', 2) as [string, string];
    await world.addOrgs([
      { slug: a, storageMode: 'database', databaseUrl: proxy.url(tenantDb.name) },
      { slug: b, storageMode: 'database', databaseUrl: tenantDb.url },
    ]);
    const pools = await TenantPools.open({
      registry: world.registry,
      maxConnections: 1,
      connectTimeoutMs: 500,
      acquireTimeoutMs: 8_000,
    });
    const closes: string[] = [];
    pools.on('connection:close', (event) => closes.push(`${event.slug} ${event.reason}`));
    try {
      await pools.withTenant(a, (db) => db.query('select 1'));
      // a's database host goes silent: the reclaim of a's idle connection never completes
      // its goodbye, yet b gets the one slot.
      proxy.mode = 'freeze';
      const rows = await pools.withTenant(b, (db) => db.query<{ one: number }>('select 1 as one'));
      expect(rows).toEqual([{ one: 1 }]);
      expect(closes).toEqual([`${a} reclaim`]);
      expect(pools.stats().counters.timeouts).toBe(0);
    } finally {
      await pools.close();
      proxy.mode = 'pass';
    }
  });

  it('close() finishes although a lent connection can no longer reach its server', async () => {
    const [a] = slugs('hangc', 1) as [string];
    await world.addOrgs([{ slug: a, storageMode: 'database', databaseUrl: proxy.url(tenantDb.name) }]);
    const pools = await TenantPools.open({
      registry: world.registry,
      maxConnections: 2,
      connectTimeoutMs: 500,
      closeTimeoutMs: 100,
    });
    try {
      const db = await pools.acquire(a);
      await db.query('select 1');
      proxy.mode = 'freeze';
      await pools.close();
      // The socket is dropped once the bounded goodbye gives up: the slot comes back.
      await until(() => pools.stats().budget.open === 0);
      db.release();
    } finally {
      proxy.mode = 'pass';
    }
  });
});

describe('invalidate while a connect is under way', () => {
  it('moves the queued acquire to the new pool and does not count the cut-short connect as a failure', async () => {
    const [a] = slugs('inval', 1) as [string];
    await world.addOrgs([{ slug: a, storageMode: 'database', databaseUrl: proxy.url(tenantDb.name) }]);
    const pools = await TenantPools.open({
      registry: world.registry,
      failureThreshold: 1,
      failureCooldownMs: 60_000,
      acquireTimeoutMs: 8_000,
    });
    try {
      proxy.mode = 'hold';
      const first = pools.acquire(a);
      await until(() => proxy.held === 1);
      proxy.mode = 'pass';
      // An operator rotates the secret while the first connect is still on its way.
      await pools.invalidate(a);
      proxy.passHeld();
      const db = await first;
      expect(await db.query<{ one: number }>('select 1 as one')).toEqual([{ one: 1 }]);
      db.release();
      // The old pool's connect succeeded on a closed pool: no failure, no open breaker.
      await until(() => pools.stats().budget.open === 1);
      expect(pools.stats().counters.connectFailures).toBe(0);
      const again = await pools.withTenant(a, (conn) => conn.query<{ one: number }>('select 1 as one'));
      expect(again).toEqual([{ one: 1 }]);
    } finally {
      proxy.mode = 'pass';
      await pools.close();
    }
  });
});

describe('circuit breaker opening on queued callers', () => {
  it('withdraws the slot requests of the callers it fails, so the budget queue holds no one gone', async () => {
    const [a, b] = slugs('brk', 2) as [string, string];
    await world.addOrgs([
      { slug: a, storageMode: 'database', databaseUrl: proxy.url(tenantDb.name) },
      { slug: b, storageMode: 'database', databaseUrl: tenantDb.url },
    ]);
    const pools = await TenantPools.open({
      registry: world.registry,
      maxConnections: 3,
      failureThreshold: 1,
      failureCooldownMs: 60_000,
      acquireTimeoutMs: 8_000,
    });
    try {
      const held = [await pools.acquire(b), await pools.acquire(b)];
      proxy.mode = 'hold';
      // The first caller's connect takes the free slot; the others ask the budget for one.
      const first = pools.acquire(a).catch((err: unknown) => err);
      await until(() => proxy.held === 1);
      const others = [pools.acquire(a), pools.acquire(a)].map((p) => p.catch((err: unknown) => err));
      await until(() => pools.stats().budget.waiting === 2);
      proxy.failHeld();
      expect(await first).toBeInstanceOf(Error);
      // The failure opens the breaker: the callers queued behind it fail fast, and the
      // slots asked for them are withdrawn (the freed slot went to one of them already).
      for (const result of await Promise.all(others)) {
        expect(result).toMatchObject({ name: 'TenantUnavailableError' });
      }
      expect(pools.stats().budget.waiting).toBe(0);
      proxy.failHeld();
      for (const db of held) db.release();
    } finally {
      proxy.mode = 'pass';
      await pools.close();
    }
  });
});
