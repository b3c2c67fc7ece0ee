/**
 * Issue 4, item 11: `CLIENT PAUSE 5000 ALL` while jobs are fetched, completed and
 * enqueued. The engine must carry on afterwards with its state intact: every job
 * completes exactly once, and no job ever runs twice at the same time.
 *
 * The pause would stall every suite sharing the common Redis, so this one runs on a
 * private `redis-server` of its own.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BullMqEngine } from '../../src/queue/bullmq/bullmq-engine.js';
import { type PrivateRedis, startPrivateRedis } from '../support/private-redis.js';
import { uniqueName } from '../support/services.js';

const TENANTS = ['a', 'b', 'c', 'd'];
const BEFORE_PAUSE = 200;
const DURING_PAUSE = 200;
const SLOTS = 8;

describe('BullMqEngine under CLIENT PAUSE', () => {
  let server: PrivateRedis;
  beforeAll(async () => {
    server = await startPrivateRedis();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('loses no job and runs none twice at once', async () => {
    const engine = new BullMqEngine({
      connection: server.url,
      prefix: uniqueName('stall'),
      stalledIntervalMs: 200,
    });
    const admin = new Redis(server.url);
    const errors: Error[] = [];
    engine.on('redis:error', ({ error }) => errors.push(error));
    const queue = 'q';
    const running = new Set<string>();
    const completions = new Map<string, number>();
    let overlaps = 0;
    const total = BEFORE_PAUSE + DURING_PAUSE;
    const enqueueRange = (from: number, to: number) =>
      engine.enqueueBulk(
        queue,
        Array.from({ length: to - from }, (_, i) => ({
          tenant: TENANTS[(from + i) % 4]!,
          name: 'n',
          data: from + i,
          jobId: `j${from + i}`,
        })),
      );
    await enqueueRange(0, BEFORE_PAUSE);

    let pausedAt = -1;
    const slot = async (slotId: number): Promise<void> => {
      while ([...completions.values()].reduce((a, b) => a + b, 0) < total) {
        const ready = await engine.readyTenants(queue);
        if (ready.length === 0) {
          await engine.waitForReady(queue, 50);
          continue;
        }
        const tenant = ready[slotId % ready.length]!;
        const job = await engine.fetch(queue, tenant, `w${slotId}`, 30_000);
        if (!job) continue;
        const key = `${job.tenant}/${job.id}`;
        if (running.has(key)) overlaps += 1;
        running.add(key);
        await new Promise((resolve) => setTimeout(resolve, 2));
        running.delete(key);
        await engine.complete(job, null);
        completions.set(key, (completions.get(key) ?? 0) + 1);
        if (pausedAt < 0 && completions.size >= BEFORE_PAUSE / 4) {
          pausedAt = completions.size;
          // Fired from its own connection; the engine's commands queue up behind it.
          await admin.call('CLIENT', 'PAUSE', '5000', 'ALL');
          // Producers keep enqueueing while the server is paused.
          void enqueueRange(BEFORE_PAUSE, total);
        }
      }
    };
    const sweeper = (async () => {
      while ([...completions.values()].reduce((a, b) => a + b, 0) < total) {
        await engine.recoverStalled(queue);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    await Promise.all([...Array.from({ length: SLOTS }, (_, i) => slot(i)), sweeper]);

    expect(pausedAt).toBeGreaterThan(0);
    expect(overlaps).toBe(0);
    expect(completions.size).toBe(total);
    expect([...completions.values()].every((n) => n === 1)).toBe(true);
    const counts = await Promise.all(TENANTS.map((tenant) => engine.counts(queue, tenant)));
    expect(counts.reduce((sum, c) => sum + c.completed, 0)).toBe(total);
    expect(counts.every((c) => c.waiting === 0 && c.active === 0 && c.failed === 0)).toBe(true);
    expect(errors).toEqual([]);

    await engine.close();
    await admin.quit();
  });
});
