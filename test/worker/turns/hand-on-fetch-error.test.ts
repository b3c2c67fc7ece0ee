/**
 * A turn that hands the slot on takes the next tenant's first job with its completion. On
 * BullMQ, when that take fails (here: once, across shards, where it is a fetch of its own)
 * the completion still resolves, to null, and the worker marks that tenant empty as if it
 * had nothing. Its job must not then wait for the worker's next poll: the engine wakes the
 * queue's waits, and the read of the ready index that follows lists the tenant again.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Fleet } from '../../../src/fleet.js';
import { KeyLayout } from '../../../src/queue/bullmq/cluster/key-layout.js';
import { deletePrefix, openBullMq } from '../../queue/engines.js';
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

it("runs the next tenant's job soon when the take that hands the slot on to it fails", async () => {
  const store = openBullMq({ shards: 4 });
  const engine = store.open();
  const layout = new KeyLayout(store.prefix, 4);
  // Two tenants on different shards, so the hand-on's take is a fetch of its own.
  const [first, ...rest] = await reg.addTenants(8, {}, 'handonerr');
  const second = rest.find((slug) => layout.shardOf(slug) !== layout.shardOf(first!))!;
  const queue = uniqueName('q');
  await engine.enqueueBulk(queue, [
    { tenant: first!, name: 'n', data: 1 },
    { tenant: first!, name: 'n', data: 2 },
    { tenant: second, name: 'n', data: 3 },
  ]);
  // One failure, of the first fetch made inside a completion (a dropped connection, say).
  let completing = 0;
  let failed = false;
  const complete = engine.complete.bind(engine);
  engine.complete = async (...args: Parameters<typeof complete>) => {
    completing++;
    try {
      return await complete(...args);
    } finally {
      completing--;
    }
  };
  const fetch = engine.fetch.bind(engine);
  engine.fetch = async (...args: Parameters<typeof fetch>) => {
    if (completing > 0 && !failed) {
      failed = true;
      throw new Error('connection reset (injected)');
    }
    return fetch(...args);
  };
  const errors: Error[] = [];
  engine.on('redis:error', ({ error }: { error: Error }) => errors.push(error));
  const fleet = await Fleet.open({ engine, registry: reg.registry });
  const ran: number[] = [];
  // No poll of the ready index during the test.
  const worker = fleet.worker<number>(
    queue,
    async (job) => {
      ran.push(job.data);
      await sleep(100);
    },
    { concurrency: 1, jobsPerTurn: 1, pollIntervalMs: 600_000, borrowConnection: false },
  );
  try {
    await until(() => ran.length === 3, "every job to run (before the worker's next poll)", {
      timeoutMs: 30_000,
    });
    expect(failed).toBe(true);
    expect(errors.map((error) => error.message)).toContain('connection reset (injected)');
    expect([...ran].sort()).toEqual([1, 2, 3]);
    await worker.close();
  } finally {
    await fleet.close();
    await deletePrefix(store.prefix);
  }
});
