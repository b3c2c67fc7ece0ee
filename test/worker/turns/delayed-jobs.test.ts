/**
 * A delayed job runs once due, not at the worker's next poll of the engine (the poll here
 * is longer than the test), whether it falls due while its partition's only waiting job
 * runs (on BullMQ that job is then not its partition's last: the turn goes on) or only
 * after the partition ran dry (on BullMQ the partition's entry in the ready index moves to
 * its due time, which a wait for the engine's wake-up already under way did not read), or
 * was enqueued while the worker idled (on pg-boss that enqueue sent no wake-up).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet } from '../../../src/fleet.js';
import { bullMqEngine, memoryEngine, pgBossEngine } from '../../queue/engines.js';
import { uniqueName } from '../../support/services.js';
import { until } from '../../support/wait.js';
import { openRegistry, type RegistryFixture } from '../support.js';

let reg: RegistryFixture;
beforeAll(async () => {
  reg = await openRegistry();
});
afterAll(async () => {
  await reg?.cleanup();
});

describe.each([memoryEngine, bullMqEngine, pgBossEngine])('on $name', (engineCase) => {
  /** Runs 'now' (for `nowMs`) and 'later' (due `delayMs` after the enqueue); resolves to what ran when. */
  async function runBoth(
    delayMs: number,
    nowMs: number,
  ): Promise<{ enqueuedAt: number; ran: { data: string; at: number }[] }> {
    const harness = await engineCase.open();
    const { engine } = harness;
    const [tenant] = await reg.addTenants(1, {}, 'delayed');
    const queue = uniqueName('q');
    const enqueuedAt = Date.now();
    await engine.enqueueBulk(queue, [
      { tenant: tenant!, name: 'n', data: 'now' },
      { tenant: tenant!, name: 'n', data: 'later', delayMs },
    ]);
    const fleet = await Fleet.open({ engine, registry: reg.registry });
    const ran: { data: string; at: number }[] = [];
    const worker = fleet.worker<string>(
      queue,
      async (job) => {
        ran.push({ data: job.data, at: Date.now() });
        if (job.data === 'now') await sleep(nowMs);
      },
      { concurrency: 1, pollIntervalMs: 600_000, borrowConnection: false },
    );
    try {
      await until(() => ran.length === 2, "the delayed job to run (before the worker's next poll)", {
        timeoutMs: 30_000,
      });
      await worker.close();
      return { enqueuedAt, ran };
    } finally {
      await fleet.close();
      await harness.cleanup();
    }
  }

  it('runs a delayed job that falls due while the only waiting job runs', async () => {
    const { ran } = await runBoth(100, 300);
    expect(ran.map((r) => r.data)).toEqual(['now', 'later']);
  });

  it('runs a delayed job not yet due when its partition runs dry once it falls due', async () => {
    const delayMs = 1_500;
    const { enqueuedAt, ran } = await runBoth(delayMs, 200);
    expect(ran.map((r) => r.data)).toEqual(['now', 'later']);
    // Not before it was due.
    expect(ran[1]!.at).toBeGreaterThanOrEqual(enqueuedAt + delayMs);
  });

  it('runs a job enqueued delayed while the worker idles once it falls due', async () => {
    const harness = await engineCase.open();
    const { engine } = harness;
    const [tenant] = await reg.addTenants(1, {}, 'idledelay');
    const queue = uniqueName('q');
    const fleet = await Fleet.open({ engine, registry: reg.registry });
    const ran: number[] = [];
    const worker = fleet.worker(queue, async () => void ran.push(Date.now()), {
      concurrency: 1,
      pollIntervalMs: 600_000,
      borrowConnection: false,
    });
    try {
      // The worker's wait for a wake-up is under way, with nothing due.
      await sleep(300);
      const delayMs = 500;
      const enqueuedAt = Date.now();
      await engine.enqueue(queue, { tenant: tenant!, name: 'n', data: 1, delayMs });
      await until(() => ran.length === 1, "the delayed job to run (before the worker's next poll)", {
        timeoutMs: 30_000,
      });
      expect(ran[0]!).toBeGreaterThanOrEqual(enqueuedAt + delayMs);
      await worker.close();
    } finally {
      await fleet.close();
      await harness.cleanup();
    }
  });
});
