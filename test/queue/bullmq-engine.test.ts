/**
 * What only the BullMQ engine has: its bounded cache of per-partition Workers (which
 * must never close a Worker under a job this process holds) and its option checks.
 */
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { BullMqEngine } from '../../src/queue/bullmq/bullmq-engine.js';
import type { BullMqLease } from '../../src/queue/bullmq/jobs.js';
import type { ActiveJob } from '../../src/queue/engine.js';
import { REDIS_URL } from '../support/services.js';
import { deletePrefix, openBullMq } from './engines.js';

const LOCK = 30_000;

describe('BullMqEngine', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  it('keeps at most maxCachedPartitions idle Workers, never evicting one whose jobs it holds', async () => {
    const store = openBullMq({ maxCachedPartitions: 4 });
    const engine = store.open();
    cleanups.push(async () => {
      await engine.close();
      await deletePrefix(store.prefix);
    });
    const tenants = Array.from({ length: 12 }, (_, i) => `t${i}`);
    await engine.enqueueBulk(
      'q',
      tenants.flatMap((tenant) => [
        { tenant, name: 'n', data: 1, attempts: 2, backoff: { type: 'fixed' as const, delayMs: 0 } },
        { tenant, name: 'n', data: 2 },
      ]),
    );
    const held: ActiveJob[] = [];
    for (const tenant of tenants) held.push((await engine.fetch('q', tenant, 'w', LOCK))!);
    // Every partition holds a job, so none may be evicted yet.
    expect(engine.cachedPartitions).toBe(12);
    // Settling each job goes through its own partition's Worker, evicted only afterwards.
    for (const [i, job] of held.entries()) {
      if (i % 2 === 0) await engine.complete(job, null);
      else expect(await engine.fail(job, new Error('again'))).toBe('retrying');
    }
    expect(engine.cachedPartitions).toBe(4);
    // Evicted partitions come back on demand, with their state in Redis.
    for (const tenant of tenants) {
      for (
        let job = await engine.fetch('q', tenant, 'w', LOCK);
        job;
        job = await engine.fetch('q', tenant, 'w', LOCK)
      )
        await engine.complete(job, null);
      expect(await engine.counts('q', tenant)).toEqual({
        waiting: 0,
        active: 0,
        delayed: 0,
        completed: 2,
        failed: 0,
      });
    }
    expect(engine.cachedPartitions).toBeLessThanOrEqual(4);
  });

  it('re-lists a tenant whose job was put back by a process that died before announcing it', async () => {
    const store = openBullMq();
    const engine = store.open();
    cleanups.push(async () => {
      await engine.close();
      await deletePrefix(store.prefix);
    });
    await engine.enqueue('q', {
      tenant: 'acme',
      name: 'n',
      data: null,
      attempts: 2,
      backoff: { type: 'fixed', delayMs: 0 },
    });
    const job = await engine.fetch('q', 'acme', 'w', LOCK);
    // The partition holds only the active job now, so an empty fetch unlists the tenant.
    expect(await engine.fetch('q', 'acme', 'w', LOCK)).toBeNull();
    expect(await engine.readyTenants('q')).toEqual([]);
    // A worker retries the job straight through BullMQ and dies before it can announce it.
    const { job: bullJob, token } = job!.lease as BullMqLease;
    await bullJob.moveToFailed(new Error('crash'), token, false);
    expect(await engine.counts('q', 'acme')).toMatchObject({ waiting: 1, active: 0 });
    // Any worker's next sweep repairs the index (readyTenants' own marker sweep may have
    // done it already, when its interval has passed: not asserted either way).
    await engine.recoverStalled('q');
    expect(await engine.readyTenants('q')).toEqual(['acme']);
    expect((await engine.fetch('q', 'acme', 'w', LOCK))?.attempt).toBe(2);
  });

  it('gives every batch record a TTL (batchTtlMs, 7 days by default), renewed as its jobs finish', async () => {
    const redis = new Redis(REDIS_URL);
    const store = openBullMq();
    const short = store.open({ batchTtlMs: 60_000 });
    const plain = store.open();
    cleanups.push(async () => {
      await Promise.all([short.close(), plain.close()]);
      await redis.quit();
      await deletePrefix(store.prefix);
    });
    const key = (batch: string) => `${store.prefix}:#batch:${batch}`;
    // Both ways a job joins its batch: without a jobId (HINCRBY) and with one (the script).
    await short.enqueueBulk('q', [
      { tenant: 'acme', name: 'n', data: 1, batchId: 'b1' },
      { tenant: 'globex', name: 'n', data: 2, batchId: 'b1', jobId: 'keyed' },
    ]);
    await plain.enqueue('q', { tenant: 'acme', name: 'n', data: 3, batchId: 'b2' });
    const ttl = async (batch: string) => redis.pttl(key(batch));
    expect(await ttl('b1')).toBeGreaterThan(0);
    expect(await ttl('b1')).toBeLessThanOrEqual(60_000);
    expect(await ttl('b2')).toBeGreaterThan(60_000);
    expect(await ttl('b2')).toBeLessThanOrEqual(7 * 24 * 3600 * 1000);

    // Finishing a job renews the TTL even when it was gone (a hash without TTL never stays).
    await redis.persist(key('b1'));
    await short.complete((await short.fetch('q', 'globex', 'w', LOCK))!, null);
    expect(await ttl('b1')).toBeGreaterThan(0);
    expect(await ttl('b1')).toBeLessThanOrEqual(60_000);
    expect(await short.batchProgress('b1')).toEqual({ total: 2, completed: 1, failed: 0, pending: 1 });
  });

  it('rejects bad options with a ConfigError naming the option', () => {
    const attempt = (options: object) => () =>
      new BullMqEngine({ connection: REDIS_URL, ...options } as ConstructorParameters<
        typeof BullMqEngine
      >[0]);
    expect(attempt({ connection: 'http://example.com' })).toThrow(ConfigError);
    expect(attempt({ connection: 42 })).toThrow(/connection/);
    expect(attempt({ prefix: 'a:b' })).toThrow(expect.objectContaining({ option: 'prefix' }));
    expect(attempt({ maxCachedPartitions: 0 })).toThrow(
      expect.objectContaining({ option: 'maxCachedPartitions' }),
    );
    expect(attempt({ keepCompleted: 1.5 })).toThrow(expect.objectContaining({ option: 'keepCompleted' }));
    // Durations past what a timer holds (2^31 - 1 ms) would fire at once; sizes are bounded.
    for (const option of ['stalledIntervalMs', 'closeTimeoutMs', 'batchTtlMs'])
      expect(attempt({ [option]: 3_000_000_000 })).toThrow(expect.objectContaining({ option }));
    for (const [option, value] of [
      ['maxCachedPartitions', 100_001],
      ['maxStalledCount', 1_001],
      ['keepCompleted', 1_000_001],
      ['keepFailed', 1_000_001],
      ['maxDataBytes', 512 * 1024 * 1024 + 1],
    ] as const)
      expect(attempt({ [option]: value })).toThrow(expect.objectContaining({ option }));
    expect(attempt({ batchTtlMs: 0 })).toThrow(expect.objectContaining({ option: 'batchTtlMs' }));
  });
});
