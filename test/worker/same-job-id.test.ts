/**
 * A caller-chosen jobId is unique only within its (queue, tenant) partition: two tenants
 * may run `tick-1` at the same time. The worker must keep both apart — each runs once,
 * keeps its lock past `lockDurationMs` and completes — on every engine.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { engines } from '../queue/engines.js';
import { until } from '../support/wait.js';
import { type FleetFixture, gate, openFleet, openRegistry, type RegistryFixture } from './support.js';

// Renewed every half of it: 500 ms of slack for a loaded machine before a lock could lapse.
const LOCK_MS = 1_000;

let reg: RegistryFixture;
beforeAll(async () => {
  reg = await openRegistry();
});
afterAll(async () => {
  await reg?.cleanup();
});

describe.each(engines)('the same caller jobId in two tenants on the $name engine', (engine) => {
  let fx: FleetFixture;
  beforeEach(async () => {
    fx = await openFleet(engine, reg.registry);
  });
  afterEach(async () => {
    await fx.cleanup();
  });

  it('runs both at once, keeps both locks extended and completes each exactly once', async () => {
    const { fleet, queue } = fx;
    const tenants = await reg.addTenants(2);
    for (const tenant of tenants) {
      expect(await fleet.enqueue(queue, { tenant, name: 'tick', data: tenant, jobId: 'tick-1' })).toBe(
        'tick-1',
      );
    }
    const bothRunning = gate();
    const runs: string[] = [];
    const outlived = gate();
    const worker = fleet.worker<string>(
      queue,
      async (job) => {
        runs.push(`${job.tenant}:${job.id}:${job.data}`);
        if (runs.length === 2) bothRunning.open();
        // Hold the job until the test has seen both locks outlive their first term.
        await outlived.promise;
        return job.tenant;
      },
      { borrowConnection: false, concurrency: 4, lockDurationMs: LOCK_MS, stalledIntervalMs: 50 },
    );
    const aborted: string[] = [];
    const completed: string[] = [];
    const errors: string[] = [];
    worker.on('job:aborted', ({ job, reason }) => aborted.push(`${job.tenant}:${reason}`));
    worker.on('job:completed', ({ job, result }) => completed.push(`${job.tenant}:${job.id}:${result}`));
    worker.on('error', ({ during }) => errors.push(during));
    // A failed expectation must not leave the handlers hanging until the close deadline.
    onTestFinished(() => outlived.open());
    await bothRunning.promise;
    expect(worker.runningCount).toBe(2);
    // Hold both past two and a half lock terms. A lock that was not extended would expire,
    // the stalled sweeps (every 50 ms) would hand its job out again, and the handler would
    // see a third run. (The sleep only sets how long the handlers run; nothing is timed.)
    await sleep(2.5 * LOCK_MS);
    for (const tenant of tenants) {
      expect(await fleet.counts(queue, tenant)).toMatchObject({ waiting: 0, active: 1, completed: 0 });
    }
    expect(runs).toHaveLength(2);
    outlived.open();
    await until(() => completed.length === 2, 'both completions');
    await worker.close();
    expect(runs.sort()).toEqual(tenants.map((t) => `${t}:tick-1:${t}`).sort());
    expect(completed.sort()).toEqual(tenants.map((t) => `${t}:tick-1:${t}`).sort());
    expect(aborted).toEqual([]);
    expect(errors).toEqual([]);
    for (const tenant of tenants) {
      expect(await fleet.counts(queue, tenant)).toMatchObject({ waiting: 0, active: 0, completed: 1 });
      expect((await fleet.job(queue, tenant, 'tick-1'))?.result).toBe(tenant);
    }
  });
});
