/**
 * What the BullMQ engine leaves in Redis: a waiting job's hash stays compact (listpack),
 * no partition keeps a BullMQ events stream once it has nothing waiting, and a tenant
 * that ran many jobs and went idle keeps under 1 KB: completed jobs are kept by its logical
 * queue (`keepCompleted` for the whole queue), not by the partition. Sizes are
 * Redis's own `MEMORY USAGE`, read key by key under the test's prefix.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BullMqEngine } from '../../src/queue/bullmq/bullmq-engine.js';
import { REDIS_URL } from '../support/services.js';
import { deletePrefix, openBullMq } from './engines.js';

const LOCK = 30_000;

describe('BullMQ engine memory in Redis', () => {
  let redis: Redis;
  let prefix: string;
  let engine: BullMqEngine;
  beforeAll(() => {
    redis = new Redis(REDIS_URL);
  });
  afterAll(() => redis.quit());
  afterEach(async () => {
    await engine.close();
    await deletePrefix(prefix);
  });

  function open(keepCompleted = 100): void {
    const store = openBullMq({ keepCompleted });
    prefix = store.prefix;
    engine = store.open();
  }

  /** Every key under `pattern` with its MEMORY USAGE in bytes. */
  async function keysUnder(pattern: string): Promise<Map<string, number>> {
    const sizes = new Map<string, number>();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      for (const key of keys)
        sizes.set(key, Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')));
    } while (cursor !== '0');
    return sizes;
  }

  /** Fetches and completes every job of the partition, then the empty fetch that settles it. */
  async function runAll(queue: string, tenant: string): Promise<number> {
    let ran = 0;
    let job = await engine.fetch(queue, tenant, 'w', LOCK);
    while (job) {
      job = await engine.complete(job, { ran }, { fetchNext: { workerId: 'w', lockDurationMs: LOCK } });
      ran += 1;
    }
    return ran;
  }

  it('stores a plain job as a listpack hash whose opts carry no retention', async () => {
    open();
    const id = await engine.enqueue('q', { tenant: 'acme', name: 'n', data: { i: 1 } });
    const key = `${prefix}:{q}:q.acme:${id}`;
    expect(await redis.object('ENCODING', key)).toBe('listpack');
    expect(JSON.parse((await redis.hget(key, 'opts'))!)).toEqual({});
    // A job with retries keeps its attempts and backoff, and still reads back whole.
    const retried = await engine.enqueue('q', {
      tenant: 'acme',
      name: 'n',
      data: 2,
      attempts: 3,
      backoff: { type: 'fixed', delayMs: 5 },
    });
    expect(await engine.getJob('q', 'acme', retried)).toMatchObject({ maxAttempts: 3, state: 'waiting' });
    expect(await engine.getJob('q', 'acme', id)).toMatchObject({ maxAttempts: 1, state: 'waiting' });
  });

  it('keeps no events stream for a partition with waiting jobs', async () => {
    open();
    await engine.enqueueBulk(
      'q',
      Array.from({ length: 30 }, (_, i) => ({ tenant: `t${i % 3}`, name: 'n', data: i })),
    );
    const keys = [...(await keysUnder(`${prefix}:{q}:q.*`)).keys()];
    expect(keys.filter((key) => key.endsWith(':events'))).toEqual([]);
    // Unprioritised jobs wait in BullMQ's `wait` list: no sorted set, no priority counter.
    expect(keys.filter((key) => key.endsWith(':wait'))).toHaveLength(3);
    expect(keys.filter((key) => /:(prioritized|pc)$/.test(key))).toEqual([]);
  });

  it('caps the events that BullMQ’s own scripts add to a partition at one stream node', async () => {
    open(1000);
    const jobs = Array.from({ length: 150 }, (_, i) => ({ tenant: 'acme', name: 'n', data: i }));
    await engine.enqueueBulk('q', jobs);
    // The partition's meta holds the cap and nothing else (BullMQ's default is 10,000).
    expect(await redis.hgetall(`${prefix}:{q}:q.acme:meta`)).toEqual({ 'opts.maxLenEvents': '0' });
    // A failure goes through BullMQ's moveToFinished, which adds a `failed` event: trimmed
    // to whole stream nodes of at most 100 entries (Redis's stream-node-max-entries).
    for (let i = 0; i < jobs.length; i++) {
      const job = (await engine.fetch('q', 'acme', 'w', LOCK))!;
      expect(await engine.fail(job, new Error('boom'))).toBe('failed');
    }
    expect(await redis.xlen(`${prefix}:{q}:q.acme:events`)).toBeLessThanOrEqual(100);
    expect(await engine.counts('q', 'acme')).toMatchObject({ failed: 150, waiting: 0 });
  });

  it('leaves under 1 KB of a tenant that ran 2,000 jobs and went idle; its last results still read', async () => {
    open();
    for (let i = 0; i < 2000; i += 500)
      await engine.enqueueBulk(
        'q',
        Array.from({ length: 500 }, (_, k) => ({ tenant: 'acme', name: 'n', data: i + k })),
      );
    const ids = (await engine.enqueueBulk('q', [{ tenant: 'acme', name: 'last', data: 'x' }]))!;
    expect(await runAll('q', 'acme')).toBe(2001);

    const partition = await keysUnder(`${prefix}:{q}:q.acme:*`);
    const finished = await redis.zrange(`${prefix}:{q}:finished`, 0, -1);
    expect(finished).toHaveLength(100);
    // What the partition holds besides the job hashes its queue retains.
    const retained = new Set(finished.map((member) => `${prefix}:{q}:q.${member}`));
    const own = [...partition].filter(([key]) => !retained.has(key));
    const bytes = own.reduce((sum, [, size]) => sum + size, 0);
    expect(own.map(([key]) => key.slice(`${prefix}:{q}:q.acme:`.length)).sort()).not.toContain('events');
    expect(bytes).toBeLessThan(1024);
    // The newest result reads as completed; counts stay exact.
    expect(await engine.getJob('q', 'acme', ids[0]!)).toMatchObject({
      state: 'completed',
      result: { ran: 2000 },
    });
    expect(await engine.counts('q', 'acme')).toMatchObject({ completed: 2001, waiting: 0, active: 0 });
  });

  it('bounds completed jobs per logical queue, not per tenant, once partitions go idle', async () => {
    open(5);
    const tenants = ['a', 'b', 'c', 'd'];
    const ids = new Map<string, string[]>();
    for (const tenant of tenants) {
      ids.set(
        tenant,
        await engine.enqueueBulk(
          'q',
          Array.from({ length: 4 }, (_, i) => ({ tenant, name: 'n', data: i })),
        ),
      );
      await runAll('q', tenant);
    }
    // 16 completed jobs in all; the queue keeps the newest 5, the last tenant's 4 among them.
    expect(await redis.zcard(`${prefix}:{q}:finished`)).toBe(5);
    const readable = [];
    for (const tenant of tenants)
      for (const id of ids.get(tenant)!)
        if (await engine.getJob('q', tenant, id)) readable.push(`${tenant}:${id}`);
    expect(readable).toHaveLength(5);
    for (const id of ids.get('d')!) expect(readable).toContain(`d:${id}`);
    const jobHashes = [...(await keysUnder(`${prefix}:{q}:q.*`)).keys()].filter((key) =>
      /:[0-9a-f-]{36}$/.test(key),
    );
    expect(jobHashes).toHaveLength(5);
  });

  it('keeps completed jobs per logical queue while its partitions are busy, none in a partition', async () => {
    open(5);
    const tenants = ['a', 'b', 'c', 'd'];
    for (const tenant of tenants)
      await engine.enqueueBulk(
        'q',
        Array.from({ length: 6 }, (_, i) => ({ tenant, name: 'n', data: i })),
      );
    // Each tenant completes 4 of its 6 jobs as a worker's turn does (fetch-next) and holds
    // its 5th: every partition still has a job active and one waiting.
    const next = { fetchNext: { workerId: 'w', lockDurationMs: LOCK } };
    for (const tenant of tenants) {
      let job = (await engine.fetch('q', tenant, 'w', LOCK))!;
      for (let i = 0; i < 4; i++) job = (await engine.complete(job, i, next))!;
      expect(job.lastReady).toBe(false);
    }
    // 16 completed jobs: the queue keeps the newest 5 of them, the partitions none.
    expect(await redis.zcard(`${prefix}:{q}:finished`)).toBe(5);
    for (const tenant of tenants) {
      expect(await redis.exists(`${prefix}:{q}:q.${tenant}:completed`)).toBe(0);
      expect(await engine.counts('q', tenant)).toMatchObject({ completed: 4, active: 1, waiting: 1 });
    }
    const jobHashes = [...(await keysUnder(`${prefix}:{q}:q.*`)).keys()].filter((key) =>
      /:[0-9a-f-]{36}$/.test(key),
    );
    // The 5 kept, and each tenant's active and waiting job.
    expect(jobHashes).toHaveLength(5 + 2 * tenants.length);
  });

  it("purging a tenant takes its completed jobs out of the queue's set, so a new job of the same id is kept", async () => {
    open(3);
    await engine.enqueueBulk('q', [
      { tenant: 'a', name: 'n', data: 1, jobId: 'same' },
      { tenant: 'a', name: 'n', data: 2 },
    ]);
    await engine.enqueue('q', { tenant: 'b', name: 'n', data: 3 });
    await runAll('q', 'a');
    await runAll('q', 'b');
    expect((await redis.zrange(`${prefix}:{q}:finished`, 0, -1)).sort()).toEqual(
      expect.arrayContaining(['a:same']),
    );
    expect(await engine.purge('q', 'a')).toEqual(['a']);
    // b's completed job stays; none of a's.
    const left = await redis.zrange(`${prefix}:{q}:finished`, 0, -1);
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(/^b:/);
    // The id comes back; completing three more jobs trims the queue's set without touching it.
    await engine.enqueue('q', { tenant: 'a', name: 'n', data: 'again', jobId: 'same' });
    await engine.enqueueBulk(
      'q',
      Array.from({ length: 3 }, (_, i) => ({ tenant: 'b', name: 'n', data: i })),
    );
    await runAll('q', 'b');
    expect(await engine.getJob('q', 'a', 'same')).toMatchObject({ state: 'waiting', data: 'again' });
  });

  it('retires a partition the stalled sweep finds idle, without an empty fetch', async () => {
    open();
    await engine.enqueueBulk(
      'q',
      Array.from({ length: 3 }, (_, i) => ({ tenant: 'acme', name: 'n', data: i })),
    );
    // Three slots take a job each; the last one taken settles the partition as it completes,
    // and the other two complete after it: the partition is empty, its ready-index entry
    // gone, but it holds their events and completed jobs until the sweep comes.
    const jobs = [];
    for (let i = 0; i < 3; i++) jobs.push((await engine.fetch('q', 'acme', 'w', LOCK))!);
    expect(jobs.map((job) => job.lastReady)).toEqual([false, false, true]);
    for (const [i, job] of [jobs[2]!, jobs[0]!, jobs[1]!].entries()) await engine.complete(job, i);
    expect(await redis.zcard(`${prefix}:{q}:ready`)).toBe(0);
    expect(await redis.exists(`${prefix}:{q}:q.acme:events`)).toBe(1);
    expect(await redis.zcard(`${prefix}:{q}:q.acme:completed`)).toBe(2);
    // The sweep forgets a partition whose last fetch is older than its grace period.
    await redis.zadd(`${prefix}:{q}:active-tenants`, 0, 'acme');
    await engine.recoverStalled('q');
    expect(await redis.zscore(`${prefix}:{q}:active-tenants`, 'acme')).toBeNull();
    expect(await redis.exists(`${prefix}:{q}:q.acme:events`, `${prefix}:{q}:q.acme:completed`)).toBe(0);
    expect(await redis.zcard(`${prefix}:{q}:finished`)).toBe(3);
  });

  it('keeps failed jobs in their partition for an operator to retry', async () => {
    open(5);
    await engine.enqueue('q', { tenant: 'acme', name: 'n', data: 1 });
    const job = (await engine.fetch('q', 'acme', 'w', LOCK))!;
    expect(await engine.fail(job, new Error('boom'))).toBe('failed');
    expect(await engine.fetch('q', 'acme', 'w', LOCK)).toBeNull();
    expect(await engine.getJob('q', 'acme', job.id)).toMatchObject({ state: 'failed' });
    expect(await redis.zcard(`${prefix}:{q}:q.acme:failed`)).toBe(1);
  });
});
