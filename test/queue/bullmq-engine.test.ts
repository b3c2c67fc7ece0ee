/**
 * What only the BullMQ engine has: its bounded cache of partition handles (a job in hand
 * keeps its own, so dropping one never strands a job), caps written in batches, the mark
 * of a partition's last job waiting, announcements recorded only once sent, a completion
 * whose next fetch fails, and its option checks.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BullMqEngine } from '../../src/queue/bullmq/bullmq-engine.js';
import type { BullMqLease } from '../../src/queue/bullmq/jobs/translate.js';
import type { BullMqEngineOptions } from '../../src/queue/bullmq/options.js';
import type { ActiveJob } from '../../src/queue/engine.js';
import { ConfigError } from '../../src/reporting/errors.js';
import { startPrivateRedis } from '../support/private-redis.js';
import { REDIS_URL } from '../support/services.js';
import { until } from '../support/wait.js';
import { deletePrefix, openBullMq } from './engines.js';

const LOCK = 30_000;

describe('BullMqEngine', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });
  /** An engine under a fresh prefix on the shared Redis, and a client; the keys go after the test. */
  const onSharedRedis = (options: Partial<BullMqEngineOptions> = {}) => {
    const store = openBullMq(options);
    const engine = store.open();
    const redis = new Redis(REDIS_URL);
    cleanups.push(async () => {
      await engine.close();
      await redis.quit();
      await deletePrefix(store.prefix);
    });
    return { engine, redis };
  };
  /** An engine on a redis-server of the test's own: its command counts and ACL are the test's alone. */
  const onPrivateRedis = async (prefix: string, options: Partial<BullMqEngineOptions> = {}) => {
    const server = await startPrivateRedis();
    const redis = new Redis(server.url);
    const engine = new BullMqEngine({ connection: server.url, prefix, ...options });
    cleanups.push(async () => {
      await engine.close();
      await redis.quit();
      await server.stop();
    });
    return { engine, redis };
  };

  it('keeps at most maxCachedPartitions partition handles; a job in hand settles after its handle was dropped', async () => {
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
    // Eight of the twelve handles were dropped while their jobs are in hand.
    expect(engine.cachedPartitions).toBe(4);
    // Each job settles through the handle its lease keeps.
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

  it('writes caps set together in a script call per shard, wakes the queue only when a cap changed', async () => {
    const { engine, redis } = await onPrivateRedis('caps', { shards: 4 });
    const calls = async (command: string) => {
      const line = (await redis.info('commandstats'))
        .split('\r\n')
        .find((entry) => entry.startsWith(`cmdstat_${command}:`));
      return Number(/calls=(\d+)/.exec(line ?? '')?.[1] ?? 0);
    };
    const meta = async (tenant: string) =>
      redis.hget(`${engine.partitionPrefix('q', tenant)}:q.${tenant}:meta`, 'concurrency');
    const tenants = Array.from({ length: 2_500 }, (_, i) => `t${i}`);
    // Lifting caps that were never set changes nothing: no wake-up.
    await Promise.all(tenants.map((tenant) => engine.setTenantConcurrency('q', tenant, null)));
    expect(await calls('publish')).toBe(0);
    const scriptCalls = (await calls('evalsha')) + (await calls('eval'));
    // Four shards, at most 1,000 partitions a call: 4 to 8 calls, not 2,500 commands.
    expect(scriptCalls).toBeGreaterThanOrEqual(4);
    expect(scriptCalls).toBeLessThanOrEqual(8);

    // The last cap asked for a tenant wins; one wake-up for the queue.
    await Promise.all([
      ...tenants.map((tenant, i) => engine.setTenantConcurrency('q', tenant, i % 2 === 0 ? 2 : null)),
      engine.setTenantConcurrency('q', 't1', 5),
    ]);
    expect(await meta('t0')).toBe('2');
    expect(await meta('t1')).toBe('5');
    expect(await meta('t3')).toBeNull();
    expect(await calls('publish')).toBe(1);
    // BullMQ enforces the cap it reads from there.
    await engine.enqueueBulk(
      'q',
      [0, 1, 2].map((data) => ({ tenant: 't0', name: 'n', data })),
    );
    expect((await engine.fetch('q', 't0', 'w', LOCK))?.data).toBe(0);
    expect((await engine.fetch('q', 't0', 'w', LOCK))?.data).toBe(1);
    expect(await engine.fetch('q', 't0', 'w', LOCK)).toBeNull();
    // The same caps again: nothing changes, no wake-up; lifting one wakes once more.
    const published = await calls('publish');
    await Promise.all(
      tenants.map((tenant, i) =>
        engine.setTenantConcurrency('q', tenant, i === 1 ? 5 : i % 2 === 0 ? 2 : null),
      ),
    );
    expect(await calls('publish')).toBe(published);
    await engine.setTenantConcurrency('q', 't0', null);
    expect(await calls('publish')).toBe(published + 1);
    expect((await engine.fetch('q', 't0', 'w', LOCK))?.data).toBe(2);

    // A wake-up that fails rejects the callers, and goes out with their next try, though
    // the script then finds the cap already written.
    await redis.call('ACL', 'SETUSER', 'default', '-publish');
    await expect(engine.setTenantConcurrency('q', 't2', 7)).rejects.toThrow(/NOPERM|permission/i);
    await redis.call('ACL', 'SETUSER', 'default', '+publish');
    expect(await meta('t2')).toBe('7');
    const beforeRetry = await calls('publish');
    await engine.setTenantConcurrency('q', 't2', 7);
    expect(await calls('publish')).toBe(beforeRetry + 1);
    await engine.setTenantConcurrency('q', 't2', 7);
    expect(await calls('publish')).toBe(beforeRetry + 1);
  });

  it("marks a job taken as its partition's last one waiting: the tenant leaves the ready index, its completion retires the partition", async () => {
    const { engine, redis } = await onPrivateRedis('last');
    const scriptCalls = async () => {
      const stats = await redis.info('commandstats');
      return [...stats.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)].reduce(
        (n, m) => n + Number(m[1]),
        0,
      );
    };
    // The ready index as Redis holds it (readyTenants would start a marker sweep meanwhile).
    const ready = async () => (await redis.zrange(`${engine.partitionPrefix('q', 'a')}:ready`, 0, -1)).sort();
    const events = (tenant: string) =>
      redis.exists(`${engine.partitionPrefix('q', tenant)}:q.${tenant}:events`);
    const job = (tenant: string, data: number) => ({ tenant, name: 'n', data });
    await engine.enqueueBulk('q', [job('a', 1), job('a', 2), job('b', 1), job('c', 1), job('d', 1)]);
    const next = (tenant?: string) => ({ fetchNext: { workerId: 'w', lockDurationMs: LOCK, tenant } });

    const a1 = (await engine.fetch('q', 'a', 'w', LOCK))!;
    expect(a1.lastReady).toBe(false);
    const a2 = (await engine.complete(a1, null, next()))!;
    expect([a2.data, a2.lastReady]).toEqual([2, true]);
    // Its last job taken, a tenant is no longer listed: a poll of the index does not offer it.
    expect(await ready()).toEqual(['b', 'c', 'd']);
    // Handed on to b: one script call completes a's last job, retires a and takes b's.
    let before = await scriptCalls();
    const b1 = (await engine.complete(a2, null, next('b')))!;
    expect([b1.tenant, b1.lastReady]).toEqual(['b', true]);
    expect((await scriptCalls()) - before).toBe(1);
    expect(await events('a')).toBe(0);
    expect(await ready()).toEqual(['c', 'd']);
    // Completed with no next job: one call completes and retires.
    before = await scriptCalls();
    await engine.complete(b1, null);
    expect((await scriptCalls()) - before).toBe(1);
    expect(await events('b')).toBe(0);
    expect(await engine.counts('q', 'b')).toMatchObject({ waiting: 0, active: 0, completed: 1 });

    // A job enqueued after the take lists its tenant again, whichever way it completes.
    const c1 = (await engine.fetch('q', 'c', 'w', LOCK))!;
    expect(c1.lastReady).toBe(true);
    await engine.enqueue('q', job('c', 2));
    const d1 = (await engine.complete(c1, null, next('d')))!;
    expect(d1.tenant).toBe('d');
    expect(await ready()).toEqual(['c']);
    await engine.enqueue('q', job('d', 2));
    await engine.complete(d1, null);
    expect(await ready()).toEqual(['c', 'd']);
    for (const tenant of ['c', 'd']) {
      const second = (await engine.fetch('q', tenant, 'w', LOCK))!;
      expect([second.data, second.lastReady]).toEqual([2, true]);
      await engine.complete(second, null);
    }
    expect(await ready()).toEqual([]);

    // A delayed job means more to come: not the last. (BullMQ's fetch-next promotes it when due.)
    await engine.enqueueBulk('q', [job('e', 1), { ...job('e', 2), delayMs: 60_000 }]);
    expect((await engine.fetch('q', 'e', 'w', LOCK))!.lastReady).toBe(false);
  });

  it("settles a partition's last job on a hand-on to another shard, and lists a batch job's tenant no more", async () => {
    const { engine, redis } = onSharedRedis({ shards: 4 });
    // Two tenants on different shards.
    const x = 'x0';
    const y = ['x1', 'x2', 'x3', 'x4', 'x5', 'x6', 'x7'].find(
      (tenant) => engine.partitionPrefix('q', tenant) !== engine.partitionPrefix('q', x),
    )!;
    const listed = async (tenant: string) =>
      (await redis.zscore(`${engine.partitionPrefix('q', tenant)}:ready`, tenant)) !== null;
    await engine.enqueueBulk('q', [
      { tenant: x, name: 'n', data: 1 },
      { tenant: y, name: 'n', data: 1, batchId: 'b1' },
    ]);
    const xJob = (await engine.fetch('q', x, 'w', LOCK))!;
    expect([xJob.lastReady, await listed(x)]).toEqual([true, false]);
    const yJob = (await engine.complete(xJob, null, {
      fetchNext: { workerId: 'w', lockDurationMs: LOCK, tenant: y },
    }))!;
    // x completed and retired (its events dropped) though the next job came from another shard.
    expect(await redis.exists(`${engine.partitionPrefix('q', x)}:q.${x}:events`)).toBe(0);
    expect(await engine.counts('q', x)).toMatchObject({ active: 0, completed: 1 });
    // y's job is counted in a batch: it completes in its MULTI, its tenant already unlisted.
    expect([yJob.tenant, yJob.lastReady, await listed(y)]).toEqual([y, true, false]);
    await engine.complete(yJob, null);
    expect(await engine.batchProgress('b1')).toMatchObject({ total: 1, completed: 1 });
    expect(await engine.readyTenants('q')).toEqual([]);
  });

  it('records a partition as announced only once the call that announced it went through', async () => {
    const { engine, redis } = await onPrivateRedis('ann');
    await engine.enqueueBulk(
      'q',
      [1, 2].map((data) => ({ tenant: 'a', name: 'n', data })),
    );
    // The first fetch is due to announce the partition to the stalled sweeps, and fails.
    await redis.call('ACL', 'SETUSER', 'default', '-evalsha', '-eval');
    await expect(engine.fetch('q', 'a', 'w', LOCK)).rejects.toThrow(/NOPERM|permission/i);
    await redis.call('ACL', 'SETUSER', 'default', '+evalsha', '+eval');
    expect(await redis.zscore('ann:{q}:active-tenants', 'a')).toBeNull();
    // So the next one announces it: a sweep must know of the partition before its job is active.
    const job = (await engine.fetch('q', 'a', 'w', LOCK))!;
    expect(job.data).toBe(1);
    expect(await redis.zscore('ann:{q}:active-tenants', 'a')).not.toBeNull();
  });

  it('resolves a completion whose fetch of the next job fails to null, and reports the error', async () => {
    const { engine, redis } = onSharedRedis();
    const errors: Error[] = [];
    engine.on('redis:error', ({ error }) => errors.push(error));
    // A job counted in a batch completes in its own MULTI, then fetches the next apart.
    await engine.enqueue('q', { tenant: 'a', name: 'n', data: 1, batchId: 'b1' });
    const job = (await engine.fetch('q', 'a', 'w', LOCK))!;
    // Tenant b's partition is broken: its fetch fails (WRONGTYPE).
    await redis.set(`${engine.partitionPrefix('q', 'b')}:q.b:wait`, 'not a list');
    const next = await engine.complete(job, 'done', {
      fetchNext: { workerId: 'w', lockDurationMs: LOCK, tenant: 'b' },
    });
    expect(next).toBeNull();
    expect(errors.map((error) => error.message).join()).toMatch(/WRONGTYPE/);
    // The completion itself went through, and was counted.
    expect(await engine.counts('q', 'a')).toMatchObject({ active: 0, completed: 1 });
    expect(await engine.batchProgress('b1')).toMatchObject({ total: 1, completed: 1, pending: 0 });
  });

  it('wakes the waits when a fetch finds only delayed jobs, at the first due time, with no timer overflow', async () => {
    const { engine } = onSharedRedis();
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.name);
    process.on('warning', onWarning);
    try {
      // Due in 30 days, beyond what one Node timer holds (about 24.8 days).
      await engine.enqueue('q', { tenant: 'a', name: 'n', data: 1, delayMs: 30 * 86_400_000 });
      let woken = false;
      const far = engine.waitForReady('q', 600_000).then(() => {
        woken = true;
      });
      await sleep(100);
      expect(await engine.fetch('q', 'a', 'w', LOCK)).toBeNull();
      await sleep(200);
      expect(warnings).not.toContain('TimeoutOverflowWarning');
      expect(woken).toBe(false);
      // Tenant b: a job ready now and one due in 300 ms. A wait begins while b is listed as
      // ready now, so it reads no due time of b's; then b's ready job is taken, and the next
      // fetch finds only the delayed one: that fetch wakes the wait when it falls due.
      await engine.enqueueBulk('q', [
        { tenant: 'b', name: 'n', data: 1 },
        { tenant: 'b', name: 'n', data: 2, delayMs: 300 },
      ]);
      await sleep(100); // the enqueue's wake-up message, delivered before the wait begins
      const near = engine.waitForReady('q', 600_000);
      expect((await engine.fetch('q', 'b', 'w', LOCK))?.data).toBe(1);
      expect(await engine.fetch('q', 'b', 'w', LOCK)).toBeNull();
      await near;
      expect(await engine.readyTenants('q')).toEqual(['b']);
      await engine.close();
      await far;
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('wakes a wait for a tenant that falls due between the wait starting and its read of the index', async () => {
    const { engine } = onSharedRedis();
    await engine.waitForReady('q', 10); // subscribed, so the next wait is not an early one
    // Node's clock, as the engine reads it: the job is enqueued at t0 and due at t0 + 5; the
    // wait starts at t0 (its caller then reads the ready tenants: none yet) and reads the
    // index at t0 + 10, the tenant by then due.
    const t0 = Date.now();
    let later = false;
    const clock = vi.spyOn(Date, 'now').mockImplementation(() => (later ? t0 + 10 : t0));
    try {
      await engine.enqueue('q', { tenant: 'a', name: 'n', data: 1, delayMs: 5 });
      await sleep(100); // the enqueue's wake-up message, delivered before the wait begins
      let woken = false;
      const wait = engine.waitForReady('q', 600_000).then(() => {
        woken = true;
      });
      later = true;
      // With the read's own moment as the bound, the wait slept until its 600 s ran out.
      await until(() => woken, 'the wait woken for the tenant due in between', { timeoutMs: 5_000 });
      await wait;
    } finally {
      clock.mockRestore();
      await engine.close();
    }
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
