/**
 * The contract of `QueueEngine`, written once and run over every engine.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ActiveJob, QueueEngine } from '../../src/queue/engine.js';
import { MAX_PRIORITY } from '../../src/queue/job-input.js';
import { ClosedError, ValidationError } from '../../src/reporting/errors.js';
import { uniqueName } from '../support/services.js';
import { eventually } from '../support/wait.js';
import { type EngineHarness, engines } from './engines.js';

const LOCK = 30_000;

/** Polls `fn` until it returns non-null; the loop bound keeps a broken engine from hanging. */

async function drain(engine: QueueEngine, queue: string, tenant: string): Promise<ActiveJob[]> {
  const jobs: ActiveJob[] = [];
  for (
    let job = await engine.fetch(queue, tenant, 'w', LOCK);
    job;
    job = await engine.fetch(queue, tenant, 'w', LOCK)
  )
    jobs.push(job);
  return jobs;
}

describe.each(engines)('$name engine', (engineCase) => {
  let harness: EngineHarness;
  let engine: QueueEngine;
  let queue: string;

  beforeEach(async () => {
    harness = await engineCase.open();
    engine = harness.engine;
    queue = uniqueName('q');
  });
  afterEach(async () => {
    await harness.cleanup();
  });

  it('enqueues, fetches and completes a job', async () => {
    const data = { n: 1, nested: { list: [1, 2] } };
    const id = await engine.enqueue(queue, { tenant: 'acme', name: 'render', data });
    data.nested.list.push(3); // the caller's later mutation must not leak in
    expect(await engine.readyTenants(queue)).toEqual(['acme']);
    expect(await engine.counts(queue, 'acme')).toEqual({
      waiting: 1,
      active: 0,
      delayed: 0,
      completed: 0,
      failed: 0,
    });

    const job = await engine.fetch(queue, 'acme', 'w1', LOCK);
    expect(job).toMatchObject({
      id,
      queue,
      tenant: 'acme',
      name: 'render',
      attempt: 1,
      maxAttempts: 1,
      batchId: null,
    });
    expect(job?.data).toEqual({ n: 1, nested: { list: [1, 2] } });
    expect(await engine.counts(queue, 'acme')).toMatchObject({ waiting: 0, active: 1 });
    expect(await engine.fetch(queue, 'acme', 'w1', LOCK)).toBeNull();

    await engine.complete(job!, { ok: true });
    expect(await engine.counts(queue, 'acme')).toEqual({
      waiting: 0,
      active: 0,
      delayed: 0,
      completed: 1,
      failed: 0,
    });
    expect(await engine.getJob(queue, 'acme', id)).toMatchObject({
      state: 'completed',
      result: { ok: true },
    });
    expect(await engine.fetch(queue, 'other', 'w1', LOCK)).toBeNull();
    expect(await engine.getJob(queue, 'acme', 'no-such-job')).toBeNull();
  });

  it('treats a repeated jobId in the same partition as a no-op', async () => {
    const a = await engine.enqueue(queue, { tenant: 'acme', name: 'n', data: 1, jobId: 'tick-1' });
    const b = await engine.enqueue(queue, { tenant: 'acme', name: 'n', data: 2, jobId: 'tick-1' });
    const c = await engine.enqueue(queue, { tenant: 'beta', name: 'n', data: 3, jobId: 'tick-1' });
    expect([a, b, c]).toEqual(['tick-1', 'tick-1', 'tick-1']);
    expect((await engine.counts(queue, 'acme')).waiting).toBe(1);
    expect((await engine.counts(queue, 'beta')).waiting).toBe(1);
    expect((await engine.fetch(queue, 'acme', 'w', LOCK))?.data).toBe(1);
  });

  it('enqueueCounted says how many jobs were new, an id already in its partition not counted', async () => {
    const jobs = [
      { tenant: 'acme', name: 'n', data: 1, jobId: 'c-1' },
      { tenant: 'beta', name: 'n', data: 2, jobId: 'c-1' },
      { tenant: 'acme', name: 'n', data: 3 },
    ];
    expect(await engine.enqueueCounted(queue, jobs)).toMatchObject({
      ids: ['c-1', 'c-1', expect.any(String)],
      added: 3,
    });
    const again = await engine.enqueueCounted(queue, [
      ...jobs.slice(0, 2),
      { tenant: 'gamma', name: 'n', data: 4, jobId: 'c-1' },
    ]);
    expect(again).toEqual({ ids: ['c-1', 'c-1', 'c-1'], added: 1 });
    expect((await engine.counts(queue, 'acme')).waiting).toBe(2);
  });

  it('enqueues in bulk, keeping order within each partition', async () => {
    const jobs = Array.from({ length: 30 }, (_, i) => ({
      tenant: i % 2 ? 'odd' : 'even',
      name: 'n',
      data: i,
    }));
    const ids = await engine.enqueueBulk(queue, jobs);
    // Ids the engine makes are unique across the queue's partitions.
    expect(new Set(ids).size).toBe(30);
    expect((await engine.readyTenants(queue)).sort()).toEqual(['even', 'odd']);
    const even = await drain(engine, queue, 'even');
    expect(even.map((job) => job.data)).toEqual(jobs.filter((j) => j.tenant === 'even').map((j) => j.data));
    expect(even.map((job) => job.id)).toEqual(ids.filter((_, i) => i % 2 === 0));

    // More jobs than one round trip carries (the BullMQ engine sends MULTIs of 500).
    const big = await engine.enqueueBulk(
      queue,
      Array.from({ length: 1_100 }, (_, i) => ({ tenant: 'big', name: 'n', data: i })),
    );
    expect(new Set(big).size).toBe(1_100);
    expect((await engine.counts(queue, 'big')).waiting).toBe(1_100);
    const firstThree = [];
    for (let i = 0; i < 3; i++) firstThree.push((await engine.fetch(queue, 'big', 'w', LOCK))?.data);
    expect(firstThree).toEqual([0, 1, 2]);
  });

  it('rejects a bad bulk as a whole, with a ValidationError naming the field', async () => {
    const bad = engine.enqueueBulk(queue, [
      { tenant: 'acme', name: 'n', data: 1 },
      { tenant: 'acme', name: 'n', data: { big: 1n } as unknown },
    ]);
    await expect(bad).rejects.toBeInstanceOf(ValidationError);
    await expect(bad).rejects.toMatchObject({ field: 'data' });
    await expect(
      engine.enqueue(queue, { tenant: 'acme', name: 'n', data: 1, attempts: 0 }),
    ).rejects.toMatchObject({
      field: 'attempts',
    });
    await expect(engine.enqueue('bad:queue', { tenant: 'acme', name: 'n', data: 1 })).rejects.toMatchObject({
      field: 'queue',
    });
    expect((await engine.counts(queue, 'acme')).waiting).toBe(0);
  });

  it('holds a delayed job back until it is due, then wakes waiters', async () => {
    await engine.enqueue(queue, { tenant: 'acme', name: 'later', data: 'later', delayMs: 400 });
    expect(await engine.counts(queue, 'acme')).toMatchObject({ waiting: 0, delayed: 1 });
    await engine.enqueue(queue, { tenant: 'acme', name: 'now', data: 'now' });
    const first = await engine.fetch(queue, 'acme', 'w', LOCK);
    expect(first?.data).toBe('now');
    expect(await engine.fetch(queue, 'acme', 'w', LOCK)).toBeNull();
    // Longer than the test timeout: only the delay elapsing can wake this.
    await engine.waitForReady(queue, 600_000);
    const later = await eventually(() => engine.fetch(queue, 'acme', 'w', LOCK), 'the delayed job');
    expect(later.data).toBe('later');
  });

  it('runs priority 1 first, then higher numbers, then unprioritised jobs in FIFO order', async () => {
    await engine.enqueueBulk(queue, [
      { tenant: 'acme', name: 'n', data: 'a' },
      { tenant: 'acme', name: 'n', data: 'c', priority: 5 },
      { tenant: 'acme', name: 'n', data: 'b' },
      { tenant: 'acme', name: 'n', data: 'd', priority: 1 },
      { tenant: 'acme', name: 'n', data: 'e', priority: 5 },
      { tenant: 'acme', name: 'n', data: 'z', priority: MAX_PRIORITY },
      ...Array.from({ length: 40 }, (_, i) => ({ tenant: 'acme', name: 'n', data: `f${i}` })),
    ]);
    expect((await drain(engine, queue, 'acme')).map((job) => job.data)).toEqual([
      'd',
      'c',
      'e',
      'z',
      'a',
      'b',
      ...Array.from({ length: 40 }, (_, i) => `f${i}`),
    ]);
    await expect(
      engine.enqueue(queue, { tenant: 'acme', name: 'n', data: null, priority: MAX_PRIORITY + 1 }),
    ).rejects.toMatchObject({ field: 'priority' });
  });

  it('retries with backoff, then fails keeping message and stack', async () => {
    const id = await engine.enqueue(queue, {
      tenant: 'acme',
      name: 'flaky',
      data: null,
      attempts: 3,
      backoff: { type: 'exponential', delayMs: 50 },
    });
    for (const attempt of [1, 2, 3]) {
      const job = await eventually(() => engine.fetch(queue, 'acme', 'w', LOCK), `attempt ${attempt}`);
      expect(job.attempt).toBe(attempt);
      const outcome = await engine.fail(job, new Error(`boom ${attempt}`));
      expect(outcome).toBe(attempt < 3 ? 'retrying' : 'failed');
      if (attempt < 3) expect(await engine.counts(queue, 'acme')).toMatchObject({ delayed: 1, active: 0 });
    }
    expect(await engine.counts(queue, 'acme')).toEqual({
      waiting: 0,
      active: 0,
      delayed: 0,
      completed: 0,
      failed: 1,
    });
    const info = await engine.getJob(queue, 'acme', id);
    expect(info).toMatchObject({ state: 'failed', attemptsMade: 3, maxAttempts: 3 });
    expect(info?.error?.message).toBe('boom 3');
    expect(info?.error?.stack).toContain('boom 3');
  });

  it('stops retrying an unrecoverable failure', async () => {
    const id = await engine.enqueue(queue, { tenant: 'acme', name: 'n', data: null, attempts: 5 });
    const job = await engine.fetch(queue, 'acme', 'w', LOCK);
    expect(await engine.fail(job!, new Error('bad input'), { unrecoverable: true })).toBe('failed');
    expect(await engine.getJob(queue, 'acme', id)).toMatchObject({ state: 'failed', attemptsMade: 1 });
    expect(await engine.fetch(queue, 'acme', 'w', LOCK)).toBeNull();
  });

  it('hands a job out again once its lock expired, and ignores the stale holder', async () => {
    const id = await engine.enqueue(queue, { tenant: 'acme', name: 'n', data: null });
    const dead = await engine.fetch(queue, 'acme', 'dead-worker', 150);
    expect(dead).not.toBeNull();
    const again = await eventually(async () => {
      await engine.recoverStalled(queue);
      return engine.fetch(queue, 'acme', 'live-worker', LOCK);
    }, 'the stalled job to come back');
    expect(again.id).toBe(id);
    expect(await engine.extendLocks([dead!], LOCK)).toEqual([id]);
    await engine.complete(dead!, 'stale'); // changes nothing: the live worker holds the job
    expect(await engine.counts(queue, 'acme')).toMatchObject({ active: 1, completed: 0 });
    expect(await engine.extendLocks([again], LOCK)).toEqual([]);
    await engine.complete(again, 'fresh');
    expect(await engine.getJob(queue, 'acme', id)).toMatchObject({ state: 'completed', result: 'fresh' });
  });

  it('fails a job that stalled more often than allowed', async () => {
    const id = await engine.enqueue(queue, { tenant: 'acme', name: 'n', data: null, attempts: 5 });
    let runs = 0;
    for (let i = 0; i < 400 && (await engine.counts(queue, 'acme')).failed === 0; i++) {
      await engine.recoverStalled(queue);
      if (await engine.fetch(queue, 'acme', 'doomed-worker', 100)) runs += 1;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    // The first run plus one re-run (maxStalledCount 1), then failed for good.
    expect(runs).toBe(2);
    const info = await engine.getJob(queue, 'acme', id);
    expect(info?.state).toBe('failed');
    expect(info?.error?.message).toContain('stalled');
  });

  it('treats a lock that expired before a sweep as lost: the late result is dropped and the job runs again', async () => {
    const id = await engine.enqueue(queue, { tenant: 'acme', name: 'n', data: null });
    const late = await engine.fetch(queue, 'acme', 'slow-worker', 100);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await engine.extendLocks([late!], LOCK)).toEqual([id]);
    await engine.complete(late!, 'too late');
    expect(await engine.counts(queue, 'acme')).toMatchObject({ active: 1, completed: 0 });
    const again = await eventually(async () => {
      await engine.recoverStalled(queue);
      return engine.fetch(queue, 'acme', 'w', LOCK);
    }, 'the job to run again');
    await engine.complete(again, 'on time');
    expect(await engine.getJob(queue, 'acme', id)).toMatchObject({ state: 'completed', result: 'on time' });
  });

  it('keeps a job whose lock is extended', async () => {
    await engine.enqueue(queue, { tenant: 'acme', name: 'n', data: null });
    // Each extension is 2 s; the loop runs over 3 s with an extension every ~100 ms, so
    // only the extensions keep the job from being swept (the sweeps run every 100 ms).
    const job = await engine.fetch(queue, 'acme', 'w', 2000);
    for (let i = 0; i < 30; i++) {
      expect(await engine.extendLocks([job!], 2000)).toEqual([]);
      await engine.recoverStalled(queue);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(await engine.counts(queue, 'acme')).toMatchObject({ active: 1, waiting: 0 });
    await engine.complete(job!, null);
  });

  it('caps a tenant’s running jobs across every handle on the store', async () => {
    const peer = await harness.peer();
    await engine.setTenantConcurrency(queue, 'acme', 2);
    await engine.enqueueBulk(
      queue,
      Array.from({ length: 5 }, (_, i) => ({ tenant: 'acme', name: 'n', data: i })),
    );
    await engine.enqueue(queue, { tenant: 'beta', name: 'n', data: 'b' });
    const a = await engine.fetch(queue, 'acme', 'w1', LOCK);
    const b = await peer.fetch(queue, 'acme', 'w2', LOCK);
    expect([a?.data, b?.data]).toEqual([0, 1]);
    expect(await engine.fetch(queue, 'acme', 'w1', LOCK)).toBeNull();
    expect(await peer.fetch(queue, 'acme', 'w2', LOCK)).toBeNull();
    expect((await engine.fetch(queue, 'beta', 'w1', LOCK))?.data).toBe('b');
    await engine.complete(a!, null);
    expect((await peer.fetch(queue, 'acme', 'w2', LOCK))?.data).toBe(2);
    expect(await engine.fetch(queue, 'acme', 'w1', LOCK)).toBeNull();
    await engine.setTenantConcurrency(queue, 'acme', null);
    expect((await engine.fetch(queue, 'acme', 'w1', LOCK))?.data).toBe(3);
    expect(await engine.counts(queue, 'acme')).toMatchObject({ active: 3, waiting: 1, completed: 1 });
  });

  it('sets and lifts many tenants’ caps in one call, and rejects a bad one writing none', async () => {
    const tenants = ['acme', 'beta', 'gamma'];
    await engine.enqueueBulk(
      queue,
      tenants.flatMap((tenant) => Array.from({ length: 3 }, (_, i) => ({ tenant, name: 'n', data: i }))),
    );
    await engine.setTenantConcurrencies(
      queue,
      new Map([
        ['acme', 1],
        ['beta', 2],
        ['gamma', null],
      ]),
    );
    expect((await drain(engine, queue, 'acme')).length).toBe(1);
    expect((await drain(engine, queue, 'beta')).length).toBe(2);
    expect((await drain(engine, queue, 'gamma')).length).toBe(3);
    const bad = [
      { caps: { acme: 2 }, field: 'caps' },
      {
        caps: new Map([
          ['acme', 2],
          ['bad:tenant', 2],
        ]),
        field: 'tenant',
      },
      {
        caps: new Map<string, number | null>([
          ['acme', 2],
          ['beta', 0],
        ]),
        field: 'max',
      },
    ];
    for (const { caps, field } of bad) {
      const call = engine.setTenantConcurrencies(queue, caps as never);
      await expect(call).rejects.toBeInstanceOf(ValidationError);
      await expect(call).rejects.toMatchObject({ field });
    }
    await expect(engine.setTenantConcurrencies(queue, new Map())).resolves.toBeUndefined();
    // None of the bad calls wrote acme's cap of 2: it still runs one job at a time.
    expect(await engine.fetch(queue, 'acme', 'w', LOCK)).toBeNull();
    await engine.setTenantConcurrencies(queue, new Map([['acme', null]]));
    expect((await drain(engine, queue, 'acme')).length).toBe(2);
  });

  it('writes caps in call order: a cap asked while a lift of the tenant is under way stays', async () => {
    await engine.enqueueBulk(
      queue,
      Array.from({ length: 3 }, (_, i) => ({ tenant: 'acme', name: 'n', data: i })),
    );
    const lift = engine.setTenantConcurrencies(queue, new Map([['acme', null]]));
    const cap = engine.setTenantConcurrencies(queue, new Map([['acme', 1]]));
    await Promise.all([lift, cap]);
    expect((await drain(engine, queue, 'acme')).length).toBe(1);
  });

  it('counts every finished job though it keeps only the newest bodies (default 100)', async () => {
    const ids = await engine.enqueueBulk(
      queue,
      Array.from({ length: 115 }, (_, i) => ({ tenant: 'acme', name: 'n', data: i })),
    );
    const jobs = await drain(engine, queue, 'acme');
    expect(jobs).toHaveLength(115);
    // "Newest" is by finish time in milliseconds, and several completions share one: the
    // five oldest finish a few milliseconds before the rest, so which ones go is not left
    // to how ties sort (BullMQ breaks them by job id).
    for (const job of jobs.slice(0, 5)) await engine.complete(job, job.data);
    await sleep(5);
    for (const job of jobs.slice(5, 105)) await engine.complete(job, job.data);
    for (const job of jobs.slice(105)) await engine.fail(job, new Error('no'));
    expect(await engine.counts(queue, 'acme')).toEqual({
      waiting: 0,
      active: 0,
      delayed: 0,
      completed: 105,
      failed: 10,
    });
    expect(await engine.getJob(queue, 'acme', ids[0]!)).toBeNull();
    expect(await engine.getJob(queue, 'acme', ids[104]!)).toMatchObject({ state: 'completed', result: 104 });
    expect(await engine.getJob(queue, 'acme', ids[114]!)).toMatchObject({ state: 'failed' });
  });

  it('reports batch progress', async () => {
    const batchId = uniqueName('batch');
    await engine.enqueueBulk(
      queue,
      ['a', 'b', 'c'].map((tenant) => ({
        tenant,
        name: 'fan',
        data: null,
        batchId,
        jobId: `${batchId}-${tenant}`,
      })),
    );
    await engine.enqueue(queue, { tenant: 'a', name: 'fan', data: null, batchId, jobId: `${batchId}-a` });
    expect(await engine.batchProgress(batchId)).toEqual({ total: 3, completed: 0, failed: 0, pending: 3 });
    await engine.complete((await engine.fetch(queue, 'a', 'w', LOCK))!, null);
    await engine.fail((await engine.fetch(queue, 'b', 'w', LOCK))!, new Error('no'));
    expect(await engine.batchProgress(batchId)).toEqual({ total: 3, completed: 1, failed: 1, pending: 1 });
    expect(await engine.batchProgress(uniqueName('none'))).toEqual({
      total: 0,
      completed: 0,
      failed: 0,
      pending: 0,
    });
  });

  it('lists ready tenants and wakes waiters on enqueue and on abort', async () => {
    expect(await engine.readyTenants(queue)).toEqual([]);
    // Longer than the test timeout: only the enqueue can wake this in time.
    const woken = engine.waitForReady(queue, 600_000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await engine.enqueue(queue, { tenant: 'acme', name: 'n', data: null });
    await woken;
    expect(await engine.readyTenants(queue)).toEqual(['acme']);
    await drain(engine, queue, 'acme');
    expect(await engine.readyTenants(queue)).toEqual([]);

    const controller = new AbortController();
    const aborted = engine.waitForReady(queue, 600_000, controller.signal);
    controller.abort();
    await aborted;
  });

  it('never loses readiness while a producer races a consumer emptying the partition', async () => {
    const producer = await harness.peer();
    const rounds = engine.name === 'memory' ? 10_000 : 600;
    let completed = 0;
    let unlisted = 0;
    const take = async (tenant: string): Promise<boolean> => {
      const job = await engine.fetch(queue, tenant, 'w', LOCK);
      if (job) {
        await engine.complete(job, null);
        completed += 1;
      }
      return job !== null;
    };
    for (let round = 0; round < rounds; round++) {
      const tenant = `r${round % 50}`;
      await producer.enqueue(queue, { tenant, name: 'n', data: 'first' });
      expect(await take(tenant)).toBe(true);
      // The consumer's fetch finds the partition empty while the producer adds a job;
      // the producer starts a varying number of turns late to hit every interleaving.
      const [taken] = await Promise.all([
        take(tenant),
        (async () => {
          for (let turn = 0; turn < round % 5; turn++) await new Promise((resolve) => setImmediate(resolve));
          await producer.enqueue(queue, { tenant, name: 'n', data: 'second' });
        })(),
      ]);
      if (!taken && !(await engine.readyTenants(queue)).includes(tenant)) unlisted += 1;
      while (await take(tenant));
    }
    expect(unlisted).toBe(0);
    expect(completed).toBe(2 * rounds);
    expect(await engine.readyTenants(queue)).toEqual([]);
    // About 5,000 calls: on pg-boss, each a Postgres round trip, 40 s on a busy machine.
  }, 180_000);

  it("purges one tenant's partition, or the whole queue, in every state", async () => {
    const other = uniqueName('q');
    await engine.enqueueBulk(queue, [
      { tenant: 'acme', name: 'n', data: 1 },
      { tenant: 'acme', name: 'n', data: 2, delayMs: 100 },
      { tenant: 'acme', name: 'n', data: 3, jobId: 'kept-id' },
      { tenant: 'globex', name: 'n', data: 4 },
      { tenant: 'initech', name: 'n', data: 5 },
    ]);
    await engine.enqueue(other, { tenant: 'acme', name: 'n', data: 6 });
    const held = (await engine.fetch(queue, 'acme', 'w', LOCK))!;
    await engine.complete((await engine.fetch(queue, 'globex', 'w', LOCK))!, 'done');

    expect(await engine.purge(queue, 'acme')).toEqual(['acme']);
    const none = { waiting: 0, active: 0, delayed: 0, completed: 0, failed: 0 };
    expect(await engine.counts(queue, 'acme')).toEqual(none);
    expect(await engine.getJob(queue, 'acme', 'kept-id')).toBeNull();
    // A hint that may still list an empty tenant (globex), but never the purged one.
    expect(await engine.readyTenants(queue)).not.toContain('acme');
    expect(await engine.readyTenants(queue)).toContain('initech');
    // The delayed job does not come back when it falls due, and the held one is lost.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await engine.fetch(queue, 'acme', 'w', LOCK)).toBeNull();
    expect(await engine.counts(queue, 'acme')).toEqual(none);
    expect(await engine.complete(held, null)).toBeNull();
    // The same id can be enqueued afresh, and other queues and tenants are untouched.
    await engine.enqueue(queue, { tenant: 'acme', name: 'n', data: 7, jobId: 'kept-id' });
    expect((await engine.getJob(queue, 'acme', 'kept-id'))?.data).toBe(7);
    expect((await engine.counts(other, 'acme')).waiting).toBe(1);
    expect((await engine.counts(queue, 'globex')).completed).toBe(1);

    expect(await engine.purge(queue)).toEqual(['acme', 'globex', 'initech']);
    for (const tenant of ['acme', 'globex', 'initech'])
      expect(await engine.counts(queue, tenant)).toEqual(none);
    expect(await engine.readyTenants(queue)).toEqual([]);
    expect((await engine.counts(other, 'acme')).waiting).toBe(1);
    expect(await engine.purge(queue)).toEqual([]);
  });

  it('closes idempotently and refuses use afterwards', async () => {
    const first = engine.close();
    expect(engine.close()).toBe(first);
    await first;
    await expect(engine.enqueue(queue, { tenant: 'acme', name: 'n', data: null })).rejects.toBeInstanceOf(
      ClosedError,
    );
    await expect(engine.waitForReady(queue, 10)).rejects.toBeInstanceOf(ClosedError);
    await expect(engine.fetch(queue, 'acme', 'w', LOCK)).rejects.toBeInstanceOf(ClosedError);
  });
});
