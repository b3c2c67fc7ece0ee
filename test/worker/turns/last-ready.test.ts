/**
 * A tenant's last job waiting ends its turn (BullMQ marks it `lastReady` as it is taken):
 * the worker hands the slot on with that job's completion and marks the tenant empty, so
 * it does not ask the engine for a job it would not find (a fetch, or a completion's
 * fetch-next, that comes back empty), and every job still runs once. (A delayed job is
 * more to come: delayed-jobs.test.ts.)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { Fleet } from '../../../src/fleet.js';
import type { ActiveJob, CompleteOptions, QueueEngine } from '../../../src/queue/engine.js';
import { bullMqEngine, type EngineHarness } from '../../queue/engines.js';
import { uniqueName } from '../../support/services.js';
import { until } from '../../support/wait.js';
import { openRegistry, type RegistryFixture } from '../support.js';

let reg: RegistryFixture;
let harness: EngineHarness;
beforeAll(async () => {
  reg = await openRegistry();
});
afterAll(async () => {
  await reg?.cleanup();
});
// An engine per test: each test's fleet closes it.
beforeEach(async () => {
  harness = await bullMqEngine.open();
});
afterEach(async () => {
  await harness?.cleanup();
});

/** Counts, around `engine`, the asks for a job that came back empty, and the jobs marked last. */
function countAsks(engine: QueueEngine): { empty: number; lastReady: number } {
  const counts = { empty: 0, lastReady: 0 };
  const fetch = engine.fetch.bind(engine);
  const complete = engine.complete.bind(engine);
  engine.fetch = async (...args: Parameters<typeof fetch>) => {
    const job = await fetch(...args);
    if (job === null) counts.empty++;
    else if (job.lastReady) counts.lastReady++;
    return job;
  };
  engine.complete = async (job: ActiveJob, result: unknown, options?: CompleteOptions) => {
    const next = await complete(job, result, options);
    if (options?.fetchNext !== undefined && next === null) counts.empty++;
    if (next?.lastReady) counts.lastReady++;
    return next;
  };
  return counts;
}

// Without the mark, each tenant's last completion asks for a next job and finds none (60).
// A read of the ready index may still list a tenant whose last job is being taken, and its
// answer may come before or after that take's: the picker goes by when each was asked for
// (FairPicker.stamp), and on one Redis connection the engine answers in that order, so no
// read undoes the mark. Enqueue traffic wakes a read at every enqueue, to race with takes.
it.each([{ traffic: false }, { traffic: true }])(
  'asks the engine for no job it would not find when each tenant has two (enqueue traffic: $traffic)',
  async ({ traffic }) => {
    const { engine } = harness;
    const tenants = await reg.addTenants(60, {}, 'last');
    const [noisy] = await reg.addTenants(1, {}, 'noisy');
    const queue = uniqueName('q');
    await engine.enqueueBulk(
      queue,
      tenants.flatMap((tenant) => [1, 2].map((data) => ({ tenant, name: 'n', data }))),
    );
    const counts = countAsks(engine);
    const fleet = await Fleet.open({ engine, registry: reg.registry });
    const ran = new Map<string, number>();
    // One slot per tenant, and no poll of the ready index during the run: nothing but the
    // worker's own bookkeeping and the engine's wake-ups say which tenants still have jobs.
    const worker = fleet.worker(
      queue,
      async (job) => {
        ran.set(job.id, (ran.get(job.id) ?? 0) + 1);
        if (traffic) await sleep(5);
      },
      { concurrency: 4, perTenantConcurrency: 1, pollIntervalMs: 600_000, borrowConnection: false },
    );
    // Traffic: another tenant's job, due in an hour, every 5 ms; each enqueue wakes the worker.
    let producing = traffic;
    const producer = (async () => {
      while (producing) {
        await engine.enqueue(queue, { tenant: noisy!, name: 'n', data: 0, delayMs: 3_600_000 });
        await sleep(5);
      }
    })();
    try {
      await until(async () => ran.size === tenants.length * 2, 'every job to run');
      producing = false;
      await producer;
      await worker.close();
      expect([...ran.values()].every((runs) => runs === 1)).toBe(true);
      expect(counts.lastReady).toBe(tenants.length);
      expect(counts.empty).toBe(0);
      for (const tenant of tenants)
        expect(await engine.counts(queue, tenant)).toMatchObject({ waiting: 0, active: 0, completed: 2 });
      // Each tenant left the ready index with its last job (the delayed jobs are not due).
      expect(await engine.readyTenants(queue)).toEqual([]);
    } finally {
      producing = false;
      await fleet.close();
    }
  },
);
