/**
 * Bad input to `TenantPools.open` and `acquire`, one row each: the error class and the
 * option or field it must name. After each row nothing was opened: no connection to the
 * registry database (given by URL, so a late check would have connected) or to a
 * tenant's database, and the budget is untouched. Every duration stops at what a Node
 * timer can hold (2147483647 ms) and every size at its documented bound.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  TenantInactiveError,
  UnknownTenantError,
  ValidationError,
} from '../../src/reporting/errors.js';
import type { TenantPoolsOptions } from '../../src/tenancy/tenant-pools/options.js';
import { TenantPools } from '../../src/tenancy/tenant-pools/tenant-pools.js';
import { MAX_DURATION_MS } from '../../src/validate.js';
import { type PgWorld, pgWorld } from '../support/pools-fixture.js';
import { PG_URL, REDIS_URL, uniqueName, withDatabase } from '../support/services.js';
import { type ErrorClass, fieldOf, TOO_LONG } from './support.js';

let world: PgWorld;
let tenantDb: { name: string; url: string };
beforeAll(async () => {
  world = await pgWorld();
  tenantDb = await world.createDatabase('val_pools');
});
afterAll(async () => {
  await world?.cleanup();
});

describe('TenantPools.open bad input', () => {
  const rows: Array<[label: string, options: Partial<TenantPoolsOptions> | null, field: string]> = [
    ['options null', null, 'options'],
    ['registry a number', { registry: 42 as never }, 'registry'],
    ['registry an object without find/list', { registry: {} as never }, 'registry'],
    ['secrets without resolve', { secrets: {} as never }, 'secrets'],
    ['maxConnections 0', { maxConnections: 0 }, 'maxConnections'],
    ['maxConnections 2.5', { maxConnections: 2.5 }, 'maxConnections'],
    ['maxConnections "5"', { maxConnections: '5' as never }, 'maxConnections'],
    ['maxConnections 10001', { maxConnections: 10_001 }, 'maxConnections'],
    ['maxConnections Infinity', { maxConnections: Number.POSITIVE_INFINITY }, 'maxConnections'],
    ['maxCachedPools 0', { maxCachedPools: 0 }, 'maxCachedPools'],
    ['maxCachedPools 10001', { maxCachedPools: 10_001 }, 'maxCachedPools'],
    ['perTenantMaxConnections 0', { perTenantMaxConnections: 0 }, 'perTenantMaxConnections'],
    [
      'perTenantMaxConnections over maxConnections',
      { maxConnections: 4, perTenantMaxConnections: 5 },
      'perTenantMaxConnections',
    ],
    ['perTenantMinConnections -1', { perTenantMinConnections: -1 }, 'perTenantMinConnections'],
    [
      'perTenantMinConnections over perTenantMaxConnections',
      { perTenantMaxConnections: 2, perTenantMinConnections: 3 },
      'perTenantMinConnections',
    ],
    ['schemaPoolMaxConnections 0', { schemaPoolMaxConnections: 0 }, 'schemaPoolMaxConnections'],
    [
      'schemaPoolMaxConnections over maxConnections',
      { maxConnections: 4, schemaPoolMaxConnections: 5 },
      'schemaPoolMaxConnections',
    ],
    ['acquireTimeoutMs 0', { acquireTimeoutMs: 0 }, 'acquireTimeoutMs'],
    ['acquireTimeoutMs 3e9', { acquireTimeoutMs: TOO_LONG }, 'acquireTimeoutMs'],
    ['acquireTimeoutMs 2^31', { acquireTimeoutMs: MAX_DURATION_MS + 1 }, 'acquireTimeoutMs'],
    ['acquireTimeoutMs NaN', { acquireTimeoutMs: Number.NaN }, 'acquireTimeoutMs'],
    ['idleTimeoutMs 3e9', { idleTimeoutMs: TOO_LONG }, 'idleTimeoutMs'],
    ['idleTimeoutMs 0', { idleTimeoutMs: 0 }, 'idleTimeoutMs'],
    ['maxLifetimeMs 3e9', { maxLifetimeMs: TOO_LONG }, 'maxLifetimeMs'],
    ['connectTimeoutMs 3e9', { connectTimeoutMs: TOO_LONG }, 'connectTimeoutMs'],
    ['connectTimeoutMs 1.5', { connectTimeoutMs: 1.5 }, 'connectTimeoutMs'],
    ['failureThreshold 0', { failureThreshold: 0 }, 'failureThreshold'],
    ['failureThreshold 1001', { failureThreshold: 1_001 }, 'failureThreshold'],
    ['failureCooldownMs 3e9', { failureCooldownMs: TOO_LONG }, 'failureCooldownMs'],
    ['prewarm "yes"', { prewarm: 'yes' as never }, 'prewarm'],
    ['prewarmConcurrency 0', { prewarmConcurrency: 0 }, 'prewarmConcurrency'],
    ['prewarmConcurrency 1001', { prewarmConcurrency: 1_001 }, 'prewarmConcurrency'],
    ['closeTimeoutMs -1', { closeTimeoutMs: -1 }, 'closeTimeoutMs'],
    ['closeTimeoutMs 3e9', { closeTimeoutMs: TOO_LONG }, 'closeTimeoutMs'],
    ['fleetBudget null', { fleetBudget: null as never }, 'fleetBudget'],
    ['fleetBudget an array', { fleetBudget: [] as never }, 'fleetBudget'],
    ['fleetBudget.redis missing', { fleetBudget: { defaultPerServer: 5 } as never }, 'fleetBudget.redis'],
    [
      'fleetBudget.redis 42',
      { fleetBudget: { redis: 42 as never, defaultPerServer: 5 } },
      'fleetBudget.redis',
    ],
    [
      'fleetBudget.redis an http URL',
      { fleetBudget: { redis: 'http://cache:6379', defaultPerServer: 5 } },
      'fleetBudget.redis',
    ],
    [
      'fleetBudget.redis an object without evalsha',
      { fleetBudget: { redis: {} as never, defaultPerServer: 5 } },
      'fleetBudget.redis',
    ],
    [
      'fleetBudget with both redis and postgres',
      { fleetBudget: { redis: REDIS_URL, postgres: 'postgres://db/fleet', defaultPerServer: 5 } },
      'fleetBudget.postgres',
    ],
    [
      'fleetBudget.postgres a redis URL',
      { fleetBudget: { postgres: REDIS_URL, defaultPerServer: 5 } },
      'fleetBudget.postgres',
    ],
    [
      'fleetBudget.postgres an object without query',
      { fleetBudget: { postgres: {} as never, defaultPerServer: 5 } },
      'fleetBudget.postgres',
    ],
    [
      'fleetBudget.prefix of 64 characters with postgres',
      { fleetBudget: { postgres: 'postgres://db/fleet', defaultPerServer: 5, prefix: 'p'.repeat(64) } },
      'fleetBudget.prefix',
    ],
    ['fleetBudget without any limit', { fleetBudget: { redis: REDIS_URL } }, 'fleetBudget.perServer'],
    [
      'fleetBudget.perServer an array',
      { fleetBudget: { redis: REDIS_URL, perServer: [] as never } },
      'fleetBudget.perServer',
    ],
    [
      'fleetBudget.perServer key without a port',
      { fleetBudget: { redis: REDIS_URL, perServer: { 'pg-a': 5 } } },
      'fleetBudget.perServer',
    ],
    [
      'fleetBudget.perServer key with port 70000',
      { fleetBudget: { redis: REDIS_URL, perServer: { 'pg-a:70000': 5 } } },
      'fleetBudget.perServer',
    ],
    [
      'fleetBudget.perServer limit 0',
      { fleetBudget: { redis: REDIS_URL, perServer: { 'pg-a:5432': 0 } } },
      'fleetBudget.perServer.pg-a:5432',
    ],
    [
      'fleetBudget.perServer limit 2.5',
      { fleetBudget: { redis: REDIS_URL, perServer: { 'pg-a:5432': 2.5 } } },
      'fleetBudget.perServer.pg-a:5432',
    ],
    [
      'fleetBudget.perServer limit "9"',
      { fleetBudget: { redis: REDIS_URL, perServer: { 'pg-a:5432': '9' as never } } },
      'fleetBudget.perServer.pg-a:5432',
    ],
    [
      'fleetBudget.defaultPerServer 0',
      { fleetBudget: { redis: REDIS_URL, defaultPerServer: 0 } },
      'fleetBudget.defaultPerServer',
    ],
    [
      'fleetBudget.defaultPerServer 1000001',
      { fleetBudget: { redis: REDIS_URL, defaultPerServer: 1_000_001 } },
      'fleetBudget.defaultPerServer',
    ],
    [
      'fleetBudget.leaseTtlMs 100',
      { fleetBudget: { redis: REDIS_URL, defaultPerServer: 5, leaseTtlMs: 100 } },
      'fleetBudget.leaseTtlMs',
    ],
    [
      'fleetBudget.leaseTtlMs 3e9',
      { fleetBudget: { redis: REDIS_URL, defaultPerServer: 5, leaseTtlMs: TOO_LONG } },
      'fleetBudget.leaseTtlMs',
    ],
    [
      'fleetBudget.prefix with a space',
      { fleetBudget: { redis: REDIS_URL, defaultPerServer: 5, prefix: 'a b' } },
      'fleetBudget.prefix',
    ],
  ];

  it.each(rows)('%s: ConfigError naming the option, nothing opened', async (_label, input, field) => {
    // The registry by URL: a check made after opening it would leave a connection.
    const options = input === null ? null : { registry: withDatabase(PG_URL, world.registryDb), ...input };
    const err = await TenantPools.open(options as TenantPoolsOptions).then(
      async (pools) => {
        await pools.close();
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect(fieldOf(err)).toBe(field);
    expect((err as Error).message).toMatch(/^Expected /);
    expect(await world.serverConnections(world.registryDb)).toBe(0);
  });

  it('says what was expected and what was got', async () => {
    await expect(TenantPools.open({ registry: world.registry, acquireTimeoutMs: TOO_LONG })).rejects.toThrow(
      'Expected `acquireTimeoutMs` to be an integer between 1 and 2147483647, got 3000000000',
    );
  });

  it('takes every duration at the largest a timer holds', async () => {
    const pools = await TenantPools.open({
      registry: world.registry,
      acquireTimeoutMs: MAX_DURATION_MS,
      idleTimeoutMs: MAX_DURATION_MS,
      maxLifetimeMs: MAX_DURATION_MS,
      connectTimeoutMs: MAX_DURATION_MS,
      failureCooldownMs: MAX_DURATION_MS,
      closeTimeoutMs: MAX_DURATION_MS,
      maxConnections: 10_000,
      maxCachedPools: 10_000,
    });
    await pools.close();
  });
});

describe('TenantPools.acquire bad input', () => {
  let pools: TenantPools;
  let active: string;
  let inactive: string;
  beforeAll(async () => {
    pools = await TenantPools.open({ registry: world.registry, maxConnections: 4 });
    active = uniqueName('val-on').replaceAll('_', '-');
    inactive = uniqueName('val-off').replaceAll('_', '-');
    await world.addOrgs([
      { slug: active, storageMode: 'database', databaseUrl: tenantDb.url },
      { slug: inactive, storageMode: 'database', databaseUrl: tenantDb.url },
    ]);
    await world.registry.deactivate(inactive);
  });
  afterAll(async () => {
    await pools?.close();
  });

  const rows: Array<[label: string, slug: () => unknown, type: ErrorClass, field?: string]> = [
    ['slug a number', () => 42, ValidationError, 'slug'],
    ['slug null', () => null, ValidationError, 'slug'],
    ['slug an object without a slug', () => ({}), ValidationError, 'slug'],
    ['slug unknown', () => uniqueName('nobody').replaceAll('_', '-'), UnknownTenantError],
    ['tenant deactivated', () => inactive, TenantInactiveError],
  ];

  it.each(rows)('%s: rejected, nothing opened', async (_label, slug, type, field) => {
    for (const call of [() => pools.acquire(slug() as string), () => pools.tryAcquire(slug() as string)]) {
      const err = await call().then(
        (db) => {
          db?.release();
          return undefined;
        },
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(type);
      if (field !== undefined) expect(fieldOf(err)).toBe(field);
    }
    expect(pools.stats().budget.open).toBe(0);
    expect(await world.serverConnections(tenantDb.name)).toBe(0);
  });

  const optionRows: Array<[label: string, options: unknown, field: string]> = [
    ['options a number', 5, 'options'],
    ['options null', null, 'options'],
    ['signal a string', { signal: 'x' }, 'signal'],
    ['signal a plain object', { signal: { aborted: false } }, 'signal'],
  ];

  it.each(optionRows)('acquire with %s: ValidationError, nothing opened', async (_label, options, field) => {
    const err = await pools.acquire(active, options as never).then(
      (db) => {
        db.release();
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ValidationError);
    expect(fieldOf(err)).toBe(field);
    expect(pools.stats().budget.open).toBe(0);
    expect(await world.serverConnections(tenantDb.name)).toBe(0);
  });

  it('lends a connection to the active tenant of the same database (the rows above are not vacuous)', async () => {
    await pools.withTenant(active, (db) => db.query('select 1'));
    expect(await world.serverConnections(tenantDb.name)).toBe(1);
  });
});
