/**
 * Bad options of a `FleetWorker`, one row each: the ConfigError and the option it must
 * name, thrown by the constructor before the worker does anything. After each row no
 * connection was borrowed (none on the server) and no Redis key was written under the
 * test's own prefix. Every duration stops at what a Node timer can hold (2147483647 ms),
 * every size at its documented bound; `close({ timeoutMs })` is checked the same way.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet } from '../../src/fleet.js';
import { ConfigError } from '../../src/reporting/errors.js';
import { TenantPools } from '../../src/tenancy/tenant-pools/tenant-pools.js';
import { MAX_DURATION_MS } from '../../src/validate.js';
import { FleetWorker } from '../../src/worker/fleet-worker.js';
import type { FleetWorkerOptions } from '../../src/worker/worker-options.js';
import { deletePrefix } from '../queue/engines.js';
import { type PgWorld, pgWorld } from '../support/pools-fixture.js';
import { REDIS_URL, uniqueName } from '../support/services.js';
import { keysUnder, TOO_LONG } from './support.js';

let world: PgWorld;
let redis: Redis;
let pools: TenantPools;
let fleet: Fleet;
let prefix: string;
const queue = uniqueName('q');

/** Keys under the test's prefix (SCAN, never KEYS, on a shared server). */
const keys = () => keysUnder(redis, prefix);

beforeAll(async () => {
  world = await pgWorld();
  redis = new Redis(REDIS_URL);
  prefix = uniqueName('valworker');
  pools = await TenantPools.open({ registry: world.registry, maxConnections: 2 });
  fleet = await Fleet.open({ engine: 'bullmq', redis: REDIS_URL, prefix, registry: world.registry, pools });
});
afterAll(async () => {
  await fleet?.close();
  await pools?.close();
  await deletePrefix(prefix);
  await redis?.quit();
  await world?.cleanup();
});

describe('FleetWorker options', () => {
  const rows: Array<[label: string, options: unknown, option: string]> = [
    ['options null', null, 'options'],
    ['concurrency 0', { concurrency: 0 }, 'concurrency'],
    ['concurrency 1.5', { concurrency: 1.5 }, 'concurrency'],
    ['concurrency 10001', { concurrency: 10_001 }, 'concurrency'],
    ['concurrency 1e6', { concurrency: 1e6 }, 'concurrency'],
    ['concurrency 1e8', { concurrency: 1e8 }, 'concurrency'],
    ['concurrency Infinity', { concurrency: Number.POSITIVE_INFINITY }, 'concurrency'],
    ['perTenantConcurrency 0', { perTenantConcurrency: 0 }, 'perTenantConcurrency'],
    ['perTenantConcurrency 10001', { perTenantConcurrency: 10_001 }, 'perTenantConcurrency'],
    ['jobsPerTurn 0', { jobsPerTurn: 0 }, 'jobsPerTurn'],
    ['jobsPerTurn 1001', { jobsPerTurn: 1_001 }, 'jobsPerTurn'],
    ['lockDurationMs 99', { lockDurationMs: 99 }, 'lockDurationMs'],
    ['lockDurationMs 3e9', { lockDurationMs: TOO_LONG }, 'lockDurationMs'],
    ['stalledIntervalMs 9', { stalledIntervalMs: 9 }, 'stalledIntervalMs'],
    ['stalledIntervalMs 3e9', { stalledIntervalMs: TOO_LONG }, 'stalledIntervalMs'],
    ['shutdownTimeoutMs -1', { shutdownTimeoutMs: -1 }, 'shutdownTimeoutMs'],
    ['shutdownTimeoutMs 3e9', { shutdownTimeoutMs: TOO_LONG }, 'shutdownTimeoutMs'],
    ['pollIntervalMs 0', { pollIntervalMs: 0 }, 'pollIntervalMs'],
    ['pollIntervalMs 3e9', { pollIntervalMs: TOO_LONG }, 'pollIntervalMs'],
    ['poolRetryMs 0', { poolRetryMs: 0 }, 'poolRetryMs'],
    ['poolRetryMs 3e9', { poolRetryMs: TOO_LONG }, 'poolRetryMs'],
    ['orgRefreshMs 9', { orgRefreshMs: 9 }, 'orgRefreshMs'],
    ['orgRefreshMs 3e9', { orgRefreshMs: TOO_LONG }, 'orgRefreshMs'],
    ['orgRefreshMs 2^31', { orgRefreshMs: MAX_DURATION_MS + 1 }, 'orgRefreshMs'],
    ['borrowConnection "yes"', { borrowConnection: 'yes' }, 'borrowConnection'],
    ['autorun 1', { autorun: 1 }, 'autorun'],
    ['workerId empty', { workerId: '' }, 'workerId'],
  ];

  it.each(rows)('%s: ConfigError naming the option, nothing done', async (_label, options, option) => {
    for (const make of [
      () => fleet.worker(queue, async () => {}, options as FleetWorkerOptions),
      () =>
        new FleetWorker(
          { engine: fleet.engine, orgs: world.registry, pools },
          queue,
          async () => {},
          options as FleetWorkerOptions,
        ),
    ]) {
      let err: unknown;
      try {
        make();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).option).toBe(option);
      expect((err as Error).message).toMatch(/^Expected /);
    }
    expect(pools.stats().budget.open).toBe(0);
    expect(await world.serverConnections(world.registryDb)).toBe(0);
    expect(await keys()).toBe(0);
  });

  it('refuses a handler that is not a function, and borrowing without pools', async () => {
    expect(() => fleet.worker(queue, 'run' as never)).toThrow(
      expect.objectContaining({ option: 'handler' }) as Error,
    );
    expect(
      () => new FleetWorker({ engine: fleet.engine, orgs: world.registry }, queue, async () => {}),
    ).toThrow(expect.objectContaining({ option: 'borrowConnection' }) as Error);
    expect(await keys()).toBe(0);
  });

  it('says what was expected and what was got', () => {
    expect(() =>
      fleet.worker(queue, async () => {}, { stalledIntervalMs: TOO_LONG, autorun: false }),
    ).toThrow('Expected `stalledIntervalMs` to be an integer between 10 and 2147483647, got 3000000000');
  });

  it('refuses a close timeout no timer can hold, and still closes afterwards', async () => {
    const worker = fleet.worker(queue, async () => {}, {
      autorun: false,
      concurrency: 10_000,
      jobsPerTurn: 1_000,
      lockDurationMs: MAX_DURATION_MS,
      shutdownTimeoutMs: MAX_DURATION_MS,
      orgRefreshMs: MAX_DURATION_MS,
    });
    expect(() => worker.close({ timeoutMs: TOO_LONG })).toThrow(
      expect.objectContaining({ option: 'timeoutMs' }) as Error,
    );
    expect(worker.closing).toBe(false);
    await worker.close({ timeoutMs: 0 });
    expect(worker.closing).toBe(true);
  });
});
