/**
 * Failures: connections killed server-side are replaced without the caller seeing an
 * error or the process dying (item 8), and a tenant whose database refuses connections
 * fails fast behind a circuit breaker without slowing other tenants down (item 10).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TenantUnavailableError } from '../../../src/reporting/errors.js';
import { TenantPools } from '../../../src/tenancy/tenant-pools/tenant-pools.js';
import { type PgWorld, pgWorld, slugs } from '../../support/pools-fixture.js';
import { until } from '../../support/wait.js';

let world: PgWorld;
let tenantDb: { name: string; url: string };

beforeAll(async () => {
  world = await pgWorld();
  tenantDb = await world.createDatabase('tp_res');
});
afterAll(async () => {
  await world.cleanup();
});

describe('dead connections', () => {
  it('replaces connections killed by pg_terminate_backend; callers see no error', async () => {
    const [a] = slugs('dead', 1) as [string];
    const [s] = slugs('dead-s', 1) as [string];
    await world.addOrgs([
      { slug: a, storageMode: 'database', databaseUrl: tenantDb.url },
      { slug: s, storageMode: 'schema' },
    ]);
    await world.registry.provision(s);
    const pools = await TenantPools.open({ registry: world.registry, maxConnections: 6 });
    const errors: string[] = [];
    pools.on('error', (e) => errors.push(e.error.message));
    // Three idle connections in the tenant's pool, one in the shared schema pool.
    const held = await Promise.all([1, 2, 3].map(() => pools.acquire(a)));
    for (const db of held) db.release();
    await pools.withTenant(s, (db) => db.query('select 1'));
    const pids = [...(await world.serverPids(tenantDb.name)), ...(await world.serverPids(world.registryDb))];
    expect(pids).toHaveLength(4);
    await world.admin.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [pids]);
    await until(async () => (await world.serverConnections(tenantDb.name)) === 0);
    await until(async () => (await world.serverConnections(world.registryDb)) === 0);
    // Every acquire works at once: no caller sees the dead connections.
    const rows = await Promise.all(
      [1, 2, 3].map(() => pools.withTenant(a, (db) => db.query<{ one: number }>('select 1 as one'))),
    );
    expect(rows).toEqual([[{ one: 1 }], [{ one: 1 }], [{ one: 1 }]]);
    const schemaRows = await pools.withTenant(s, (db) => db.query<{ one: number }>('select 1 as one'));
    expect(schemaRows).toEqual([{ one: 1 }]);
    // The deaths were reported as events, not thrown.
    expect(errors.length).toBeGreaterThan(0);
    const fresh = await world.serverPids(tenantDb.name);
    expect(fresh.some((pid) => pids.includes(pid))).toBe(false);
    await pools.close();
  });

  it('survives an idle connection dying with no error listener at all', async () => {
    const [a] = slugs('dead-q', 1) as [string];
    await world.addOrgs([{ slug: a, storageMode: 'database', databaseUrl: tenantDb.url }]);
    const pools = await TenantPools.open({ registry: world.registry, maxConnections: 2 });
    await pools.withTenant(a, (db) => db.query('select 1'));
    const closed: string[] = [];
    pools.on('connection:close', (e) => closed.push(e.reason));
    await world.admin.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [
      await world.serverPids(tenantDb.name),
    ]);
    // The pool notices on its own (the driver's 'error' event) and drops the connection.
    await until(() => closed.length === 1);
    expect(closed).toEqual(['dead']);
    expect(pools.stats().budget).toMatchObject({ open: 0, idle: 0 });
    expect(await pools.withTenant(a, (db) => db.query('select 1 as one'))).toEqual([{ one: 1 }]);
    await pools.close();
  });
});

describe('circuit breaker', () => {
  it('fails fast after failureThreshold refusals, for failureCooldownMs, without slowing others', async () => {
    const [broken, good] = slugs('cb', 2) as [string, string];
    await world.addOrgs([
      // Nothing listens on port 1: every connect is refused.
      { slug: broken, storageMode: 'database', databaseUrl: 'postgres://postgres@127.0.0.1:1/nowhere' },
      { slug: good, storageMode: 'database', databaseUrl: tenantDb.url },
    ]);
    const pools = await TenantPools.open({
      registry: world.registry,
      maxConnections: 1,
      failureThreshold: 3,
      failureCooldownMs: 60_000,
    });
    for (let i = 0; i < 3; i++) {
      const error = await pools.acquire(broken).catch((err: unknown) => err);
      expect(error).toBeInstanceOf(Error);
      expect(error).not.toBeInstanceOf(TenantUnavailableError);
    }
    expect(pools.stats().counters.connectFailures).toBe(3);
    // Open circuit: the broken tenant fails fast, the good one shares the single slot.
    const outcomes = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        i % 2 === 0
          ? pools.acquire(broken).then(
              () => 'lent',
              (err: unknown) => (err instanceof TenantUnavailableError ? 'unavailable' : 'other'),
            )
          : pools.withTenant(good, (db) => db.query('select 1')).then(() => 'good'),
      ),
    );
    expect(outcomes.filter((o) => o === 'unavailable')).toHaveLength(20);
    expect(outcomes.filter((o) => o === 'good')).toHaveLength(20);
    // No connect was attempted for the broken tenant while the circuit was open.
    expect(pools.stats().counters.connectFailures).toBe(3);
    const error = (await pools.tryAcquire(broken).catch((err: unknown) => err)) as TenantUnavailableError;
    expect(error).toBeInstanceOf(TenantUnavailableError);
    expect(error.slug).toBe(broken);
    expect(error.retryAt).toBeGreaterThan(Date.now());
    expect(error.message).not.toContain('postgres://');
    await pools.close();
  });

  it('lets attempts through again after the cool-down, and one more failure reopens it', async () => {
    const [broken] = slugs('cb-cool', 1) as [string];
    await world.addOrgs([
      { slug: broken, storageMode: 'database', databaseUrl: 'postgres://postgres:secret@127.0.0.1:1/x' },
    ]);
    const pools = await TenantPools.open({
      registry: world.registry,
      failureThreshold: 2,
      failureCooldownMs: 1000,
    });
    for (let i = 0; i < 2; i++)
      await expect(pools.acquire(broken)).rejects.not.toBeInstanceOf(TenantUnavailableError);
    await expect(pools.acquire(broken)).rejects.toBeInstanceOf(TenantUnavailableError);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const retried = (await pools.acquire(broken).catch((err: unknown) => err)) as Error;
    expect(retried).not.toBeInstanceOf(TenantUnavailableError);
    expect(retried.message).not.toContain('secret');
    await expect(pools.acquire(broken)).rejects.toBeInstanceOf(TenantUnavailableError);
    expect(pools.stats().counters.connectFailures).toBe(3);
    await pools.close();
  });
});
