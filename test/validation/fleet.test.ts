/**
 * Bad input to `Fleet.open` and `enqueue`, one row each: the error class and the option
 * or field it must name. After each row nothing was opened or written: no connection to
 * the registry database (given by URL, so a late check would have connected) and no
 * Redis key under the test's own prefix.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FleetJob } from '../../src/fleet.js';
import { Fleet } from '../../src/fleet.js';
import type { FleetOptions } from '../../src/fleet-options.js';
import {
  ConfigError,
  TenantInactiveError,
  UnknownTenantError,
  ValidationError,
} from '../../src/reporting/errors.js';
import { MAX_DURATION_MS } from '../../src/validate.js';
import { deletePrefix } from '../queue/engines.js';
import { type PgWorld, pgWorld } from '../support/pools-fixture.js';
import { PG_URL, REDIS_URL, uniqueName, withDatabase } from '../support/services.js';
import { type ErrorClass, fieldOf, keysUnder, TOO_LONG } from './support.js';

let world: PgWorld;
let redis: Redis;
let prefix: string;
/** Keys under the test's prefix (SCAN, never KEYS, on a shared server). */
const keys = () => keysUnder(redis, prefix);

beforeAll(async () => {
  world = await pgWorld();
  redis = new Redis(REDIS_URL);
  prefix = uniqueName('valfleet');
});
afterAll(async () => {
  await deletePrefix(prefix);
  await redis?.quit();
  await world?.cleanup();
});

describe('Fleet.open bad input', () => {
  const rows: Array<[label: string, options: Partial<FleetOptions> | null, field: string]> = [
    ['options null', null, 'options'],
    ['engine unknown', { engine: 'kafka' as never }, 'engine'],
    ['engine bullmq without redis', { engine: 'bullmq', redis: undefined }, 'redis'],
    ['engine pgboss without database', { engine: 'pgboss', database: undefined }, 'database'],
    ['database a redis URL', { engine: 'pgboss', database: 'redis://127.0.0.1:6379' }, 'database'],
    ['database a number', { database: 5432 as never }, 'database'],
    ['redis a number', { redis: 6379 as never }, 'redis'],
    ['prefix with a colon', { prefix: 'a:b' }, 'prefix'],
    ['prefix empty', { prefix: '' }, 'prefix'],
    ['registry a number', { registry: 42 as never }, 'registry'],
    ['pools a string', { pools: 'many' as never }, 'pools'],
    ['pools options with a registry', { pools: { registry: 'x' } as never }, 'pools'],
    ['pools maxConnections 0', { pools: { maxConnections: 0 } }, 'maxConnections'],
    ['pools maxConnections 10001', { pools: { maxConnections: 10_001 } }, 'maxConnections'],
    ['pools maxCachedPools 10001', { pools: { maxCachedPools: 10_001 } }, 'maxCachedPools'],
    ['pools acquireTimeoutMs 3e9', { pools: { acquireTimeoutMs: TOO_LONG } }, 'acquireTimeoutMs'],
    ['pools connectTimeoutMs 3e9', { pools: { connectTimeoutMs: TOO_LONG } }, 'connectTimeoutMs'],
    ['pools idleTimeoutMs 3e9', { pools: { idleTimeoutMs: TOO_LONG } }, 'idleTimeoutMs'],
    ['pools maxLifetimeMs 3e9', { pools: { maxLifetimeMs: TOO_LONG } }, 'maxLifetimeMs'],
    ['pools closeTimeoutMs 3e9', { pools: { closeTimeoutMs: TOO_LONG } }, 'closeTimeoutMs'],
    ['maxDataBytes 0', { maxDataBytes: 0 }, 'maxDataBytes'],
    ['maxDataBytes over 512 MiB', { maxDataBytes: 512 * 1024 * 1024 + 1 }, 'maxDataBytes'],
    ['maxDataBytes 1.5', { maxDataBytes: 1.5 }, 'maxDataBytes'],
  ];

  it.each(rows)('%s: ConfigError naming the option, nothing opened', async (_label, input, field) => {
    // By URL on the BullMQ engine: a check made after opening would leave a connection or a key.
    const options =
      input === null
        ? null
        : {
            engine: 'bullmq',
            redis: REDIS_URL,
            prefix,
            registry: withDatabase(PG_URL, world.registryDb),
            pools: {},
            ...input,
          };
    const err = await Fleet.open(options as FleetOptions).then(
      async (fleet) => {
        await fleet.close();
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect(fieldOf(err)).toBe(field);
    expect((err as Error).message).toMatch(/^Expected /);
    expect(await world.serverConnections(world.registryDb)).toBe(0);
    expect(await keys()).toBe(0);
  });

  it('opens with every pool duration at the largest a timer holds', async () => {
    const fleet = await Fleet.open({
      engine: 'memory',
      registry: world.registry,
      pools: { acquireTimeoutMs: MAX_DURATION_MS, closeTimeoutMs: MAX_DURATION_MS, maxConnections: 10_000 },
    });
    await fleet.close();
  });
});

describe('Fleet.enqueue bad input', () => {
  let fleet: Fleet;
  let active: string;
  let inactive: string;
  const queue = uniqueName('q');
  beforeAll(async () => {
    active = uniqueName('val-on').replaceAll('_', '-');
    inactive = uniqueName('val-off').replaceAll('_', '-');
    await world.addOrgs([{ slug: active }, { slug: inactive }]);
    await world.registry.deactivate(inactive);
    fleet = await Fleet.open({ engine: 'bullmq', redis: REDIS_URL, prefix, registry: world.registry });
  });
  afterAll(async () => {
    await fleet?.close();
  });

  const job = (extra: Record<string, unknown>): FleetJob => ({
    tenant: active,
    name: 'n',
    data: {},
    ...extra,
  });
  const rows: Array<
    [label: string, queue: () => unknown, job: () => unknown, type: ErrorClass, field?: string]
  > = [
    ['queue with a colon', () => 'a:b', () => job({}), ValidationError, 'queue'],
    ['queue empty', () => '', () => job({}), ValidationError, 'queue'],
    ['queue a number', () => 7, () => job({}), ValidationError, 'queue'],
    ['job null', () => queue, () => null, ValidationError, 'job'],
    ['tenant missing', () => queue, () => job({ tenant: undefined }), ValidationError, 'tenant'],
    [
      'tenant unknown',
      () => queue,
      () => job({ tenant: uniqueName('nobody').replaceAll('_', '-') }),
      UnknownTenantError,
    ],
    ['tenant deactivated', () => queue, () => job({ tenant: inactive }), TenantInactiveError],
    ['name empty', () => queue, () => job({ name: '' }), ValidationError, 'name'],
    ['name of 129 characters', () => queue, () => job({ name: 'x'.repeat(129) }), ValidationError, 'name'],
    ['data a BigInt', () => queue, () => job({ data: { n: 1n } }), ValidationError, 'data'],
    ['data a function', () => queue, () => job({ data: () => 1 }), ValidationError, 'data'],
    [
      'data over maxDataBytes',
      () => queue,
      () => job({ data: 'x'.repeat(512 * 1024) }),
      ValidationError,
      'data',
    ],
    ['jobId all digits', () => queue, () => job({ jobId: '123' }), ValidationError, 'jobId'],
    ['attempts 0', () => queue, () => job({ attempts: 0 }), ValidationError, 'attempts'],
    ['attempts 1001', () => queue, () => job({ attempts: 1_001 }), ValidationError, 'attempts'],
    ['attempts NaN', () => queue, () => job({ attempts: Number.NaN }), ValidationError, 'attempts'],
    ['delayMs -1', () => queue, () => job({ delayMs: -1 }), ValidationError, 'delayMs'],
    ['delayMs 1.5', () => queue, () => job({ delayMs: 1.5 }), ValidationError, 'delayMs'],
    ['priority 0', () => queue, () => job({ priority: 0 }), ValidationError, 'priority'],
    ['priority 2^21', () => queue, () => job({ priority: 2 ** 21 }), ValidationError, 'priority'],
    [
      'backoff of an unknown type',
      () => queue,
      () => job({ backoff: { type: 'linear', delayMs: 1 } }),
      ValidationError,
      'backoff.type',
    ],
    [
      'backoff delay -1',
      () => queue,
      () => job({ backoff: { type: 'fixed', delayMs: -1 } }),
      ValidationError,
      'backoff.delayMs',
    ],
  ];

  it.each(rows)('%s: rejected naming the field, nothing written', async (_label, q, input, type, field) => {
    for (const call of [
      () => fleet.enqueue(q() as string, input() as FleetJob),
      () => fleet.enqueueBulk(q() as string, [job({}), input() as FleetJob]),
    ]) {
      const err = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(type);
      if (field !== undefined) expect(fieldOf(err)).toBe(field);
    }
    expect(await keys()).toBe(0);
  });

  it('writes a good job under the same prefix (the rows above are not vacuous)', async () => {
    await fleet.enqueue(queue, job({}));
    expect(await keys()).toBeGreaterThan(0);
  });
});
