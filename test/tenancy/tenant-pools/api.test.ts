/**
 * The surface of TenantPools: option validation, unknown and inactive tenants (item 11),
 * the stats() shape (item 13), release semantics and close() (item 15).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ClosedError,
  ConfigError,
  TenantInactiveError,
  UnknownTenantError,
  ValidationError,
} from '../../../src/reporting/errors.js';
import { resolveTenantPoolsOptions } from '../../../src/tenancy/tenant-pools/options.js';
import { TenantPools } from '../../../src/tenancy/tenant-pools/tenant-pools.js';
import { addDatabaseTenants, type PgWorld, pgWorld, slugs } from '../../support/pools-fixture.js';
import { until } from '../../support/wait.js';

let world: PgWorld;
let tenantDb: { name: string; url: string };

beforeAll(async () => {
  world = await pgWorld();
  tenantDb = await world.createDatabase('tp_api');
});
afterAll(async () => {
  await world.cleanup();
});

const tenants = (prefix: string, n: number) => addDatabaseTenants(world, tenantDb.url, prefix, n);

describe('options', () => {
  it.each([
    [
      { maxConnections: 0 },
      'maxConnections',
      'Expected `maxConnections` to be an integer between 1 and 10000, got 0',
    ],
    [{ maxConnections: 2.5 }, 'maxConnections', 'got 2.5'],
    [{ maxCachedPools: -3 }, 'maxCachedPools', 'got -3'],
    [
      { maxConnections: 4, perTenantMaxConnections: 5 },
      'perTenantMaxConnections',
      '≤ `maxConnections` (4), got 5',
    ],
    [{ perTenantMinConnections: 3, perTenantMaxConnections: 2 }, 'perTenantMinConnections', 'got 3'],
    [{ maxConnections: 5, schemaPoolMaxConnections: 6 }, 'schemaPoolMaxConnections', 'got 6'],
    [{ acquireTimeoutMs: '5s' }, 'acquireTimeoutMs', 'got "5s"'],
    [{ failureThreshold: 0 }, 'failureThreshold', 'got 0'],
    [{ prewarm: 'yes' }, 'prewarm', 'Expected `prewarm` to be a boolean, got "yes"'],
    [{ secrets: {} }, 'secrets', 'SecretsResolver'],
    [{ registry: 42 }, 'registry', 'got 42'],
    [{ registry: {} }, 'registry', 'Expected `registry` to be an OrgRegistry or its URL, got object'],
  ])('rejects %j with a ConfigError naming %s', (bad, option, message) => {
    const input = { registry: 'postgres://x@localhost/db', ...bad } as never;
    const error = (() => {
      try {
        resolveTenantPoolsOptions(input);
      } catch (err) {
        return err;
      }
    })() as ConfigError;
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.option).toBe(option);
    expect(error.message).toContain(message);
  });

  it('fills in the defaults', () => {
    expect(resolveTenantPoolsOptions({ registry: 'sqlite:/tmp/x.db' })).toMatchObject({
      maxConnections: 50,
      maxCachedPools: 64,
      perTenantMaxConnections: 4,
      perTenantMinConnections: 0,
      schemaPoolMaxConnections: 10,
      acquireTimeoutMs: 30_000,
      idleTimeoutMs: 600_000,
      maxLifetimeMs: 1_800_000,
      connectTimeoutMs: 10_000,
      failureThreshold: 5,
      failureCooldownMs: 30_000,
      prewarm: false,
    });
  });

  it('opens and owns the registry when given its URL, and closes it', async () => {
    const [a] = await tenants('own', 1);
    const pools = await TenantPools.open({ registry: world.registry.databaseUrl });
    expect(pools.registry).not.toBe(world.registry);
    expect(await pools.withTenant(a!, (db) => db.query('select 1 as one'))).toEqual([{ one: 1 }]);
    await pools.close();
    await expect(pools.registry.get(a!)).rejects.toBeInstanceOf(ClosedError);
  });
});

describe('unknown and inactive tenants', () => {
  it('throws UnknownTenantError / TenantInactiveError and builds no pool', async () => {
    const [inactive] = slugs('inact', 1) as [string];
    await world.addOrgs([
      { slug: inactive, storageMode: 'database', databaseUrl: tenantDb.url, active: false },
    ]);
    const pools = await TenantPools.open({ registry: world.registry });
    const created: unknown[] = [];
    pools.on('pool:create', (e) => created.push(e));
    await expect(pools.acquire('no-such-tenant')).rejects.toBeInstanceOf(UnknownTenantError);
    await expect(pools.tryAcquire('no-such-tenant')).rejects.toBeInstanceOf(UnknownTenantError);
    await expect(pools.acquire(inactive)).rejects.toBeInstanceOf(TenantInactiveError);
    await expect(pools.withTenant(await world.registry.get(inactive), () => 1)).rejects.toBeInstanceOf(
      TenantInactiveError,
    );
    await expect(pools.acquire(42 as never)).rejects.toBeInstanceOf(ValidationError);
    expect(created).toEqual([]);
    expect(pools.stats().pools).toEqual([]);
    expect(pools.stats().budget.open).toBe(0);
    await pools.close();
  });
});

describe('stats()', () => {
  it('reports the budget, every pool, the counters and acquire-wait percentiles', async () => {
    const [a, b] = await tenants('stats', 2);
    const pools = await TenantPools.open({ registry: world.registry, maxConnections: 3 });
    expect(pools.stats()).toEqual({
      budget: { max: 3, open: 0, inUse: 0, idle: 0, waiting: 0 },
      pools: [],
      counters: {
        acquires: 0,
        connects: 0,
        connectFailures: 0,
        poolEvictions: 0,
        reclaims: 0,
        timeouts: 0,
        recycles: 0,
      },
      acquireWaitMs: { p50: 0, p99: 0, max: 0 },
      breakers: [],
    });
    const before = Date.now();
    const held = await Promise.all([pools.acquire(a!), pools.acquire(a!)]);
    await pools.withTenant(b!, (db) => db.query('select 1'));
    const stats = pools.stats();
    expect(stats.budget).toEqual({ max: 3, open: 3, inUse: 2, idle: 1, waiting: 0 });
    const byslug = Object.fromEntries(stats.pools.map((p) => [p.slug, p]));
    expect(byslug[a!]).toEqual({
      slug: a,
      mode: 'database',
      kind: 'postgres',
      open: 2,
      inUse: 2,
      idle: 0,
      waiting: 0,
      lastUsedAt: expect.any(Number),
    });
    expect(byslug[b!]).toMatchObject({ open: 1, inUse: 0, idle: 1, waiting: 0 });
    expect(byslug[b!]!.lastUsedAt).toBeGreaterThanOrEqual(before);
    expect(stats.counters).toMatchObject({ acquires: 3, connects: 3, connectFailures: 0 });
    const waits = stats.acquireWaitMs;
    expect(waits.p50).toBeGreaterThan(0);
    expect(waits.p50).toBeLessThanOrEqual(waits.p99);
    expect(waits.p99).toBeLessThanOrEqual(waits.max);
    for (const db of held) db.release();
    await pools.close();
  });
});

describe('release and close', () => {
  it('ignores a second release, refuses queries after release, and destroys on release(err)', async () => {
    const [a] = await tenants('rel', 1);
    const pools = await TenantPools.open({ registry: world.registry, perTenantMaxConnections: 1 });
    const closed: string[] = [];
    pools.on('connection:close', (e) => closed.push(e.reason));
    const db = await pools.acquire(a!);
    const [{ pid }] = (await db.query<{ pid: number }>('select pg_backend_pid() as pid')) as [
      { pid: number },
    ];
    db.release();
    db.release();
    await expect(db.query('select 1')).rejects.toBeInstanceOf(ClosedError);
    expect(pools.stats().budget).toMatchObject({ open: 1, idle: 1, inUse: 0 });
    // Reused: same engine process.
    const again = await pools.acquire(a!);
    expect((await again.query<{ pid: number }>('select pg_backend_pid() as pid'))[0]?.pid).toBe(pid);
    again.release(new Error('broken transaction'));
    again.release();
    await until(() => closed.length === 1);
    expect(closed).toEqual(['released-with-error']);
    // withTenant destroys the connection when the callback throws.
    await expect(
      pools.withTenant(a!, () => {
        throw new Error('job failed');
      }),
    ).rejects.toThrow('job failed');
    await until(() => closed.length === 2);
    {
      await using scoped = await pools.acquire(a!);
      expect(await scoped.query('select 1 as one')).toEqual([{ one: 1 }]);
    }
    expect(pools.stats().budget).toMatchObject({ open: 1, idle: 1, inUse: 0 });
    await pools.close();
  });

  it('closes every connection, rejects waiters with ClosedError, is idempotent, refuses use after', async () => {
    const [a, b] = await tenants('close', 2);
    // Each tenant's one connection is held, so both callers below wait, whatever the
    // machine's speed: nothing is idle to reclaim and no pool may open another.
    const pools = await TenantPools.open({
      registry: world.registry,
      maxConnections: 2,
      perTenantMaxConnections: 1,
      closeTimeoutMs: 60_000,
    });
    const held = await pools.acquire(a!);
    const heldB = await pools.acquire(b!);
    const waiting = [pools.acquire(a!), pools.acquire(b!)];
    await until(
      () => pools.stats().budget.waiting + pools.stats().pools.reduce((n, p) => n + p.waiting, 0) >= 2,
    );
    const closing = pools.close();
    expect(pools.close()).toBe(closing);
    for (const result of await Promise.allSettled(waiting)) {
      expect(result.status).toBe('rejected');
      expect((result as PromiseRejectedResult).reason).toBeInstanceOf(ClosedError);
    }
    await expect(pools.acquire(a!)).rejects.toBeInstanceOf(ClosedError);
    await expect(pools.tryAcquire(a!)).rejects.toBeInstanceOf(ClosedError);
    // The lent connections are closed once given back; close() resolves after that.
    held.release();
    heldB.release();
    await closing;
    expect(await world.serverConnections(tenantDb.name)).toBe(0);
    expect(pools.stats().budget).toMatchObject({ open: 0, inUse: 0, idle: 0 });
  });

  it('closes connections still lent after closeTimeoutMs', async () => {
    const [a] = await tenants('close-late', 1);
    const pools = await TenantPools.open({ registry: world.registry, closeTimeoutMs: 50 });
    const held = await pools.acquire(a!);
    await pools.close();
    expect(await world.serverConnections(tenantDb.name)).toBe(0);
    held.release();
    await pools[Symbol.asyncDispose]();
  });
});

describe('event listeners', () => {
  it('a listener that throws neither fails the acquire nor leaks a connection', async () => {
    const [a, b] = await tenants('listen', 2);
    const pools = await TenantPools.open({ registry: world.registry, maxConnections: 1 });
    const fail = () => {
      throw new Error('listener bug');
    };
    for (const name of ['connection:open', 'connection:close', 'pool:create', 'pool:evict'] as const) {
      pools.on(name, fail);
    }
    try {
      const rows = await pools.withTenant(a!, (db) => db.query<{ one: number }>('select 1 as one'));
      expect(rows).toEqual([{ one: 1 }]);
      expect(pools.stats().budget).toMatchObject({ open: 1, inUse: 0, idle: 1 });
      // The one slot moves to b: a's idle connection is reclaimed (its close event throws too).
      await pools.withTenant(b!, (db) => db.query('select 1'));
      expect(pools.stats().budget).toMatchObject({ open: 1, inUse: 0, idle: 1 });
      expect(await world.serverConnections(tenantDb.name)).toBe(1);
    } finally {
      await pools.close();
    }
    expect(await world.serverConnections(tenantDb.name)).toBe(0);
  });
});
