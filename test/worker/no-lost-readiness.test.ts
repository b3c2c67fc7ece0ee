/**
 * No lost readiness (issue 4, item 10): producers enqueue while the worker drains their
 * tenants to empty, 10,000 times; every job completes.
 *
 * The worker's poll interval is set far beyond the test's patience, so a readiness
 * signal lost between "this tenant is empty" and "a job arrived" would leave a job
 * waiting until the test gives up: only the engine's wake-up keeps it moving.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { engines } from '../queue/engines.js';
import { until } from '../support/wait.js';
import { type FleetFixture, openFleet, openRegistry, type RegistryFixture } from './support.js';

const PRODUCERS = 8;
const ITERATIONS = 10_000;

let reg: RegistryFixture;
beforeAll(async () => {
  reg = await openRegistry();
});
afterAll(async () => {
  await reg?.cleanup();
});

describe.each(engines)('readiness on the $name engine', (engine) => {
  let fx: FleetFixture;
  beforeEach(async () => {
    fx = await openFleet(engine, reg.registry);
  });
  afterEach(async () => {
    await fx.cleanup();
  });

  it('completes every job when enqueues race the worker draining tenants to empty', async () => {
    const tenants = await reg.addTenants(PRODUCERS, {}, 'race');
    const completed = new Set<string>();
    const waiters = new Map<string, () => void>();
    const worker = fx.fleet.worker(fx.queue, async () => {}, {
      concurrency: 8,
      borrowConnection: false,
      pollIntervalMs: 120_000,
    });
    worker.on('job:completed', ({ job }) => {
      completed.add(`${job.tenant}/${job.id}`);
      waiters.get(`${job.tenant}/${job.id}`)?.();
    });
    const enqueued: string[] = [];
    const producer = async (tenant: string) => {
      for (let i = 0; i < ITERATIONS / PRODUCERS; i++) {
        const id = await fx.fleet.enqueue(fx.queue, { tenant, name: 'ping', data: i });
        const key = `${tenant}/${id}`;
        enqueued.push(key);
        if (i % 4 === 0 && !completed.has(key)) {
          // Wait until the worker has drained this tenant, so the next enqueue lands on an
          // empty one (every fourth time: the race is the same, the suite stays quick).
          await new Promise<void>((resolve) => waiters.set(key, resolve));
          waiters.delete(key);
        } else {
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
    };
    await Promise.all(tenants.map(producer));
    // Bounded by the test's timeout; a lost readiness leaves a producer waiting forever.
    await until(() => completed.size === ITERATIONS, 'every job to complete', { timeoutMs: 120_000 });
    await worker.close();
    expect(enqueued).toHaveLength(ITERATIONS);
    expect([...completed].sort()).toEqual([...enqueued].sort());
    for (const tenant of tenants) {
      // Not `completed`: engines keep a bounded number of finished jobs (BullMQ: keepCompleted).
      expect(await fx.fleet.counts(fx.queue, tenant)).toMatchObject({
        waiting: 0,
        active: 0,
        delayed: 0,
        failed: 0,
      });
    }
  }, 150_000);
});
