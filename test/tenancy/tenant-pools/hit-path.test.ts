/**
 * The hit path: a checkout of a tenant whose org is known (the registry's cache holds it,
 * or the Org is given) and whose pool (its own, or the shared schema-mode one) holds a
 * ready idle connection lends it without waiting for anything. It keeps every promise of
 * the long way: the registry's changes are seen, the LRU counts it as a use, a released
 * lease is dead, a signal and bad options are still checked, and in schema mode the
 * session is reset and switched to the tenant's schema before its first statement.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClosedError, TenantInactiveError, ValidationError } from '../../../src/reporting/errors.js';
import { connect } from '../../../src/tenancy/drivers/index.js';
import type { Org } from '../../../src/tenancy/org.js';
import { OrgRegistry } from '../../../src/tenancy/registry/org-registry.js';
import type { TenantConnection } from '../../../src/tenancy/tenant-pools/tenant-connection.js';
import { TenantPools } from '../../../src/tenancy/tenant-pools/tenant-pools.js';
import { addDatabaseTenants, type PgWorld, pgWorld, slugs } from '../../support/pools-fixture.js';
import { until } from '../../support/wait.js';

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

  it('answers at once a tryAcquire that a full pool refuses, while an acquire still waits for it', async () => {
    const [full, roomy] = await tenants('refuse', 2);
    const orgs = await Promise.all([full, roomy].map((slug) => world.registry.get(slug!)));
    await using pools = await TenantPools.open({
      registry: world.registry,
      maxConnections: 4,
      perTenantMaxConnections: 2,
    });
    const held = [await pools.acquire(orgs[0]!), await pools.acquire(orgs[0]!)];
    // At its maximum with none idle: refused without the long way, by slug and given the Org.
    const bySlug = pools.tryAcquire(full!);
    expect(await settledAtOnce(bySlug)).toBe(true);
    expect(await bySlug).toBeNull();
    const byOrg = pools.tryAcquire(orgs[0]!);
    expect(await settledAtOnce(byOrg)).toBe(true);
    expect(await byOrg).toBeNull();
    // An acquire still waits for it, and gets one when given back.
    const waiting = pools.acquire(orgs[0]!);
    held[0]!.release();
    const again = await waiting;
    expect(await again.query('select 1 as one')).toEqual([{ one: 1 }]);
    again.release();
    held[1]!.release();
    // A pool under its maximum with none idle opens a connection (the long way).
    (await pools.acquire(orgs[1]!)).release();
    const first = await pools.acquire(orgs[1]!);
    const opened = await pools.tryAcquire(orgs[1]!);
    expect(opened).not.toBeNull();
    expect(await opened!.query('select 1 as one')).toEqual([{ one: 1 }]);
    opened!.release();
    first.release();
    expect(pools.stats().budget).toMatchObject({ open: 4, inUse: 0 });
  });

  it('answers at once a tryAcquire of a pool under its maximum with callers queued, who keep their turn', async () => {
    const [first, other] = await tenants('queued', 2);
    const orgs = await Promise.all([first, other].map((slug) => world.registry.get(slug!)));
    // A budget of three, all lent: the pool (maximum 3) has one connection and a caller
    // waiting for a slot of the budget.
    await using pools = await TenantPools.open({
      registry: world.registry,
      maxConnections: 3,
      perTenantMaxConnections: 3,
    });
    const mine = await pools.acquire(orgs[0]!);
    const theirs = [await pools.acquire(orgs[1]!), await pools.acquire(orgs[1]!)];
    const waiting = pools.acquire(orgs[0]!);
    await until(
      () => pools.stats().pools.find((pool) => pool.slug === first)?.waiting === 1,
      'a queued caller',
    );
    const queued = pools.tryAcquire(orgs[0]!);
    expect(await settledAtOnce(queued)).toBe(true);
    expect(await queued).toBeNull();
    // The queued caller, not a later tryAcquire, gets the connection given back.
    mine.release();
    const served = await waiting;
    expect(await served.query('select 1 as one')).toEqual([{ one: 1 }]);
    served.release();
    for (const lease of theirs) lease.release();
    expect(pools.stats().budget).toMatchObject({ inUse: 0 });
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

/** Whether `promise` has settled one microtask later: a hit hands back a settled promise. */
async function settledAtOnce(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  const mark = () => {
    settled = true;
  };
  void promise.then(mark, mark);
  await Promise.resolve();
  return settled;
}

describe('TenantPools hit path in schema mode', () => {
  /** Two provisioned schema-mode tenants, each with an `items` table holding its own name. */
  async function schemaTenants(prefix: string): Promise<[string, string]> {
    const [a, b] = slugs(prefix, 2) as [string, string];
    await world.addOrgs([
      { slug: a, storageMode: 'schema' },
      { slug: b, storageMode: 'schema' },
    ]);
    const conn = await connect(world.registry.databaseUrl);
    try {
      for (const slug of [a, b]) {
        const { target: schemaName } = await world.registry.provision(slug);
        await conn.exec(`CREATE TABLE "${schemaName}".items (owner text NOT NULL)`);
        await conn.query(`INSERT INTO "${schemaName}".items (owner) VALUES ($1)`, [slug]);
      }
    } finally {
      await conn.close();
    }
    return [a, b];
  }

  it('lends the shared connection at once, reset and switched to each tenant in turn', async () => {
    const [a, b] = await schemaTenants('schhit');
    await using pools = await TenantPools.open({
      registry: world.registry,
      maxConnections: 2,
      schemaPoolMaxConnections: 1,
    });
    // The first checkout opens the connection (the long way); the next ones are hits.
    const first = await pools.acquire(a);
    const [pid] = await first.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    first.release();
    const owners = async (db: TenantConnection) =>
      (await db.query<{ owner: string }>('SELECT owner FROM items')).map((row) => row.owner);

    const lendingA = pools.acquire(a);
    expect(await settledAtOnce(lendingA)).toBe(true);
    const dbA = await lendingA;
    expect(await owners(dbA)).toEqual([a]);
    // What tenant a leaves behind: a temp table shadowing `items`, a setting, its own path.
    await dbA.query('CREATE TEMP TABLE items (owner text)');
    await dbA.query(`INSERT INTO items VALUES ('left by a')`);
    await dbA.query(`SET statement_timeout = '1234ms'`);
    await dbA.query('SET search_path TO public');
    dbA.release();

    const lendingB = pools.acquire((await world.registry.get(b))!);
    expect(await settledAtOnce(lendingB)).toBe(true);
    const dbB = await lendingB;
    expect(await dbB.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).toEqual([pid]);
    expect(await owners(dbB)).toEqual([b]);
    expect(await dbB.query('SHOW statement_timeout')).toEqual([{ statement_timeout: '0' }]);
    dbB.release();

    // A tenant that sent nothing leaves its switch pending: the next checkout replaces it.
    (await pools.acquire(b)).release();
    const trying = pools.tryAcquire(a);
    expect(await settledAtOnce(trying)).toBe(true);
    const again = (await trying)!;
    expect(await owners(again)).toEqual([a]);
    again.release();
    expect(pools.stats().counters).toMatchObject({ acquires: 5, connects: 1 });
  });

  it('refuses a schema-mode Org without a valid schemaName, and keeps its connection', async () => {
    const [a] = await schemaTenants('schbad');
    await using pools = await TenantPools.open({
      registry: world.registry,
      maxConnections: 2,
      schemaPoolMaxConnections: 1,
    });
    (await pools.acquire(a)).release();
    const org = (await world.registry.get(a))!;
    for (const schemaName of [null, undefined, 'public', 'Not-A-Schema']) {
      const bad = { ...org, schemaName } as unknown as Org;
      await expect(pools.acquire(bad)).rejects.toBeInstanceOf(ValidationError);
      await expect(pools.tryAcquire(bad)).rejects.toBeInstanceOf(ValidationError);
    }
    expect(pools.stats().budget).toMatchObject({ open: 1, inUse: 0, idle: 1 });
    const db = await pools.acquire(org);
    expect((await db.query<{ owner: string }>('SELECT owner FROM items')).map((row) => row.owner)).toEqual([
      a,
    ]);
    db.release();
  });

  it('takes the long way for a connection idle for over a second, switched all the same', async () => {
    const [a] = await schemaTenants('schidle');
    await using pools = await TenantPools.open({
      registry: world.registry,
      maxConnections: 2,
      schemaPoolMaxConnections: 1,
    });
    (await pools.acquire(a)).release();
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const lending = pools.acquire(a);
    expect(await settledAtOnce(lending)).toBe(false);
    const db = await lending;
    expect((await db.query<{ owner: string }>('SELECT owner FROM items')).map((row) => row.owner)).toEqual([
      a,
    ]);
    db.release();
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
