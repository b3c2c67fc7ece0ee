/**
 * TenantPools with a fleet budget, counted on the Postgres server, with the leases in
 * Redis and in Postgres: several TenantPools in one test stand for several processes
 * sharing one budget. The own idle connection is reclaimed first, another process gives
 * up its idle one when asked, the hit path sends nothing to Redis, and an outage of the
 * store stops new connections (fail closed) while open ones keep serving, until the store
 * is back.
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AcquireTimeoutError, ClosedError } from '../../../src/reporting/errors.js';
import { serverOf } from '../../../src/tenancy/pool/connector.js';
import { ensureSql } from '../../../src/tenancy/pool/fleet-budget/postgres/lease-sql.js';
import { TenantPools } from '../../../src/tenancy/tenant-pools/tenant-pools.js';
import { addDatabaseTenants, type PgWorld, pgWorld } from '../../support/pools-fixture.js';
import { type PrivateRedis, startPrivateRedis } from '../../support/private-redis.js';
import { PG_URL, REDIS_URL, uniqueName } from '../../support/services.js';
import { tcpProxy } from '../../support/tcp-proxy.js';
import { until } from '../../support/wait.js';
import { type LeaseStoreCase, postgresLeaseStore, redisLeaseStore } from './lease-stores.js';

const SERVER = serverOf(PG_URL) as string;
let world: PgWorld;
let tenantDb: { name: string; url: string };
const stores = { redis: redisLeaseStore(), postgres: postgresLeaseStore() };
const open: TenantPools[] = [];
const prefixes: Array<[LeaseStoreCase, string]> = [];

beforeAll(async () => {
  world = await pgWorld();
  tenantDb = await world.createDatabase('tp_fleet');
});
afterEach(async () => {
  for (const pools of open.splice(0)) await pools.close();
  for (const [store, prefix] of prefixes.splice(0)) await store.cleanup(prefix);
});
afterAll(async () => {
  await stores.redis.close();
  await stores.postgres.close();
  await world?.cleanup();
});

async function fleetPools(
  store: LeaseStoreCase,
  prefix: string,
  limit: number,
  extra: { url?: string; acquireTimeoutMs?: number; leaseTtlMs?: number } = {},
): Promise<TenantPools> {
  const pools = await TenantPools.open({
    registry: world.registry,
    maxConnections: 10,
    acquireTimeoutMs: extra.acquireTimeoutMs ?? 10_000,
    fleetBudget: {
      ...store.option(extra.url),
      perServer: { [SERVER]: limit },
      // A step's bound is a third of it (2 s), which a busy CI machine's Postgres may need.
      leaseTtlMs: extra.leaseTtlMs ?? 6_000,
      prefix,
    },
  });
  open.push(pools);
  return pools;
}

function newPrefix(store: LeaseStoreCase): string {
  const prefix = uniqueName('tpfleet');
  prefixes.push([store, prefix]);
  return prefix;
}

describe.each(['redis', 'postgres'] as const)('TenantPools with a fleet budget in %s', (name) => {
  const store = stores[name];
  it('reclaims its own idle connection on the server first', async () => {
    const [a, b] = await addDatabaseTenants(world, tenantDb.url, 'fbown', 2);
    const pools = await fleetPools(store, newPrefix(store), 1);
    await pools.withTenant(a!, (db) => db.query('select 1'));
    expect(await world.serverConnections(tenantDb.name)).toBe(1);
    await pools.withTenant(b!, (db) => db.query('select 1'));
    expect(await world.serverConnections(tenantDb.name)).toBe(1);
    const fleet = pools.stats().fleet;
    expect(fleet?.reachable).toBe(true);
    expect(fleet?.servers).toEqual([{ server: SERVER, limit: 1, leases: 1, mine: 1, waiting: 0 }]);
    expect(pools.stats().counters.reclaims).toBeGreaterThanOrEqual(1);
  });

  it('asks another process to give up its idle connection, and never exceeds the limit', async () => {
    const tenants = await addDatabaseTenants(world, tenantDb.url, 'fbask', 6);
    const prefix = newPrefix(store);
    const first = await fleetPools(store, prefix, 2);
    const second = await fleetPools(store, prefix, 2);
    // The first process holds both leases, idle.
    await Promise.all([
      first.withTenant(tenants[0]!, (db) => db.query('select pg_sleep(0.05)')),
      first.withTenant(tenants[1]!, (db) => db.query('select pg_sleep(0.05)')),
    ]);
    expect(first.stats().fleet?.servers[0]?.mine).toBe(2);
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) peak = Math.max(peak, await world.serverConnections(tenantDb.name));
    })();
    await Promise.all(
      tenants.slice(2).map((slug) => second.withTenant(slug, (db) => db.query('select pg_sleep(0.02)'))),
    );
    sampling = false;
    await sampler;
    expect(peak).toBeLessThanOrEqual(2);
    // The second process got its connections from the first one's idle ones: the first
    // gave at least one up when asked (it had no caller of its own).
    expect(second.stats().fleet?.servers[0]?.mine).toBeGreaterThan(0);
    expect(first.stats().fleet?.servers[0]?.mine).toBeLessThan(2);
  });

  it('closes at once while a caller waits for a lease held by another process', async () => {
    const [a, b] = await addDatabaseTenants(world, tenantDb.url, 'fbclose', 2);
    const prefix = newPrefix(store);
    const holder = await fleetPools(store, prefix, 1);
    const held = await holder.acquire(a!);
    // Ten minutes to wait: only close() can end this acquire within the test's timeout.
    const waiter = await fleetPools(store, prefix, 1, { acquireTimeoutMs: 600_000 });
    const waiting = waiter.acquire(b!).catch((err: unknown) => err);
    await until(() => waiter.stats().fleet?.servers[0]?.waiting === 1, 'the caller to wait for a lease');
    await waiter.close();
    expect(await waiting).toBeInstanceOf(ClosedError);
    expect(await world.serverConnections(tenantDb.name)).toBe(1);
    held.release();
  });

  it('gives its place in the fleet queue up once the caller it waited for is gone', async () => {
    const [a, b] = await addDatabaseTenants(world, tenantDb.url, 'fbgone', 2);
    const prefix = newPrefix(store);
    const holder = await fleetPools(store, prefix, 1);
    const held = await holder.acquire(a!);
    const waiter = await fleetPools(store, prefix, 1, { acquireTimeoutMs: 600_000 });
    const controller = new AbortController();
    const waiting = waiter.acquire(b!, { signal: controller.signal }).catch((err: unknown) => err);
    await until(async () => (await store.queued(prefix, SERVER)) === 1, 'the caller to queue for a lease');
    controller.abort(new Error('gone'));
    expect(((await waiting) as Error).message).toBe('gone');
    // Within a poll, not after the ten minutes of acquireTimeoutMs.
    await until(async () => (await store.queued(prefix, SERVER)) === 0, 'the ticket to be withdrawn');
    held.release();
    await holder.invalidate(a!);
    await until(() => holder.stats().fleet?.servers[0]?.mine === 0, 'the holder to give its lease back');
    expect(waiter.stats().fleet?.servers[0]).toMatchObject({ mine: 0, waiting: 0 });
    expect(await world.serverConnections(tenantDb.name)).toBe(0);
  });
});

describe('TenantPools with a fleet budget in redis', () => {
  it('takes an ioredis instance, and leaves it open on close', async () => {
    const [slug] = await addDatabaseTenants(world, tenantDb.url, 'fbinst', 1);
    const prefix = newPrefix(stores.redis);
    const client = new Redis(REDIS_URL);
    try {
      const pools = await TenantPools.open({
        registry: world.registry,
        fleetBudget: { redis: client, perServer: { [SERVER]: 3 }, prefix },
      });
      await pools.withTenant(slug!, (db) => db.query('select 1'));
      expect(await client.zcard(`{${prefix}}:${SERVER}:leases`)).toBe(1);
      await pools.close();
      // The lease went back with the connection; the caller's client still works.
      expect(await client.zcard(`{${prefix}}:${SERVER}:leases`)).toBe(0);
      expect(await client.ping()).toBe('PONG');
    } finally {
      client.disconnect();
    }
  });

  it('checks out an open connection without a single Redis command', async () => {
    const [slug] = await addDatabaseTenants(world, tenantDb.url, 'fbhit', 1);
    const own: PrivateRedis = await startPrivateRedis();
    const probe = new Redis(own.url);
    try {
      const pools = await fleetPools(stores.redis, newPrefix(stores.redis), 5, {
        url: own.url,
        leaseTtlMs: 600_000,
      });
      await pools.withTenant(slug!, (db) => db.query('select 1'));
      const before = await commandCount(probe);
      for (let i = 0; i < 200; i++) await pools.withTenant(slug!, (db) => db.query('select 1'));
      // The probe's own INFO is the only command in between.
      expect((await commandCount(probe)) - before).toBe(1);
      await pools.close();
    } finally {
      probe.disconnect();
      await own.stop();
    }
  });

  it('opens nothing without Redis, keeps open connections serving, and recovers by itself', async () => {
    const [warm, cold] = await addDatabaseTenants(world, tenantDb.url, 'fbout', 2);
    let own = await startPrivateRedis();
    const port = Number(new URL(own.url).port);
    const pools = await fleetPools(stores.redis, newPrefix(stores.redis), 5, {
      url: own.url,
      // Past the store's own bound (2 s), so the timeout can name the store that failed.
      acquireTimeoutMs: 3_500,
    });
    await pools.withTenant(warm!, (db) => db.query('select 1'));
    await own.stop();
    const before = await world.serverConnections(tenantDb.name);
    const error = await pools.withTenant(cold!, (db) => db.query('select 1')).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(AcquireTimeoutError);
    expect((error as Error).message).toMatch(/fleet budget's Redis/);
    expect(pools.stats().fleet?.reachable).toBe(false);
    expect(await world.serverConnections(tenantDb.name)).toBe(before);
    // The connection already open keeps serving.
    await expect(pools.withTenant(warm!, (db) => db.query('select 2 as n'))).resolves.toEqual([{ n: 2 }]);
    own = await startPrivateRedis({ port });
    try {
      await expect(pools.withTenant(cold!, (db) => db.query('select 3 as n'))).resolves.toEqual([{ n: 3 }]);
      expect(pools.stats().fleet?.reachable).toBe(true);
    } finally {
      await pools.close();
      await own.stop();
    }
  });
});

async function commandCount(probe: Redis): Promise<number> {
  const info = await probe.info('stats');
  return Number(/total_commands_processed:(\d+)/.exec(info)?.[1]);
}

describe('TenantPools with a fleet budget in postgres', () => {
  it('takes a pg.Pool, and leaves it open on close', async () => {
    const [slug] = await addDatabaseTenants(world, tenantDb.url, 'fbpool', 1);
    const prefix = newPrefix(stores.postgres);
    const pool = new pg.Pool({ connectionString: PG_URL, max: 3 });
    try {
      const pools = await TenantPools.open({
        registry: world.registry,
        fleetBudget: { postgres: pool, perServer: { [SERVER]: 3 }, prefix },
      });
      await pools.withTenant(slug!, (db) => db.query('select 1'));
      expect(await stores.postgres.leaseIds(prefix, SERVER)).toHaveLength(1);
      await pools.close();
      // The lease went back with the connection; the caller's pool still works.
      expect(await stores.postgres.leaseIds(prefix, SERVER)).toEqual([]);
      expect((await pool.query('select 1 as n')).rows).toEqual([{ n: 1 }]);
    } finally {
      await pool.end();
    }
  });

  it('opens nothing while its Postgres does not answer, keeps open connections serving, and recovers by itself', async () => {
    const [warm, cold] = await addDatabaseTenants(world, tenantDb.url, 'fbpgout', 2);
    // The store's connections go through a proxy and carry a name of their own.
    const proxy = await tcpProxy();
    const tag = uniqueName('fbstore');
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    try {
      // The store's tables exist before the first checkout, which then has only a take to
      // wait for: creating them on a busy CI server has taken longer than the timeout.
      const prefix = newPrefix(stores.postgres);
      await admin.query(ensureSql(prefix));
      const pools = await fleetPools(stores.postgres, prefix, 5, {
        url: `${proxy.url('postgres')}?application_name=${tag}`,
        // Past the store's own bound (2 s), so the timeout can name the store that failed.
        acquireTimeoutMs: 3_500,
      });
      await pools.withTenant(warm!, (db) => db.query('select 1'));
      // New connections to the store hang; the open ones are ended by the server.
      proxy.mode = 'hold';
      const { rows } = await admin.query<{ killed: boolean }>(
        'SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE application_name = $1',
        [tag],
      );
      expect(rows.length).toBeGreaterThan(0);
      const before = await world.serverConnections(tenantDb.name);
      const error = await pools.withTenant(cold!, (db) => db.query('select 1')).catch((err: unknown) => err);
      expect(error).toBeInstanceOf(AcquireTimeoutError);
      expect((error as Error).message).toMatch(/fleet budget's Postgres/);
      expect(pools.stats().fleet?.reachable).toBe(false);
      expect(await world.serverConnections(tenantDb.name)).toBe(before);
      // The connection already open keeps serving.
      await expect(pools.withTenant(warm!, (db) => db.query('select 2 as n'))).resolves.toEqual([{ n: 2 }]);
      proxy.mode = 'pass';
      proxy.failHeld();
      await expect(pools.withTenant(cold!, (db) => db.query('select 3 as n'))).resolves.toEqual([{ n: 3 }]);
      expect(pools.stats().fleet?.reachable).toBe(true);
    } finally {
      await admin.end();
      await proxy.close();
    }
  });
});
