/**
 * `complete(job, result, { fetchNext })` over every engine: the job is completed and the
 * partition's next ready job is taken in the same call, locked for the caller, in the
 * partition's order; null (with the tenant dropped from the ready index) once empty.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { QueueEngine } from '../../src/queue/engine.js';
import { ValidationError } from '../../src/reporting/errors.js';
import { uniqueName } from '../support/services.js';
import { type EngineHarness, engines } from './engines.js';

const LOCK = 30_000;
const next = { fetchNext: { workerId: 'w', lockDurationMs: LOCK } };

describe.each(engines)('complete with fetchNext on the $name engine', (engineCase) => {
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

  it('completes the job and hands out the partition’s next ones in order, then null', async () => {
    for (const [data, priority] of [
      ['fifo-1', undefined],
      ['p2', 2],
      ['p1', 1],
      ['fifo-2', undefined],
    ] as const) {
      await engine.enqueue(queue, { tenant: 'acme', name: 'n', data, ...(priority ? { priority } : {}) });
    }
    await engine.enqueue(queue, { tenant: 'other', name: 'n', data: 'other' });
    let job = await engine.fetch(queue, 'acme', 'w', LOCK);
    const order: unknown[] = [];
    while (job !== null) {
      order.push(job.data);
      expect(job).toMatchObject({ queue, tenant: 'acme', attempt: 1 });
      // Locked for us: another fetch does not get it, and its lock can be extended.
      expect(await engine.counts(queue, 'acme')).toMatchObject({ active: 1 });
      expect(await engine.extendLocks([job], LOCK)).toEqual([]);
      job = await engine.complete(job, `done ${job.data}`, next);
    }
    expect(order).toEqual(['p1', 'p2', 'fifo-1', 'fifo-2']);
    expect(await engine.counts(queue, 'acme')).toEqual({
      waiting: 0,
      active: 0,
      delayed: 0,
      completed: 4,
      failed: 0,
    });
    // The drained tenant left the ready index; the other partition was not touched.
    expect(await engine.readyTenants(queue)).toEqual(['other']);
    expect(await engine.counts(queue, 'other')).toMatchObject({ waiting: 1, active: 0 });
    // Without fetchNext: null, and nothing more is taken.
    await engine.enqueueBulk(queue, [
      { tenant: 'acme', name: 'n', data: 'a' },
      { tenant: 'acme', name: 'n', data: 'b' },
    ]);
    const a = await engine.fetch(queue, 'acme', 'w', LOCK);
    expect(await engine.complete(a!, null)).toBeNull();
    expect(await engine.counts(queue, 'acme')).toMatchObject({ waiting: 1, active: 0, completed: 5 });
  });

  it('lets the job taken on completion be failed, retried and finished like any other', async () => {
    await engine.enqueueBulk(queue, [
      { tenant: 'acme', name: 'n', data: 1 },
      { tenant: 'acme', name: 'n', data: 2, attempts: 2, backoff: { type: 'fixed', delayMs: 0 } },
    ]);
    const first = await engine.fetch(queue, 'acme', 'w', LOCK);
    const second = await engine.complete(first!, 'ok', next);
    expect(second?.data).toBe(2);
    expect(await engine.fail(second!, new Error('boom'))).toBe('retrying');
    const again = await engine.fetch(queue, 'acme', 'w', LOCK);
    expect(again).toMatchObject({ id: second!.id, attempt: 2 });
    expect(await engine.complete(again!, 'ok', next)).toBeNull();
    expect(await engine.counts(queue, 'acme')).toMatchObject({ completed: 2, failed: 0, active: 0 });
    await expect(
      engine.complete(first!, null, { fetchNext: { workerId: 'w', lockDurationMs: 0 } }),
    ).rejects.toThrow(ValidationError);
  });

  it('still takes the next job when the completed one’s lock was lost', async () => {
    await engine.enqueueBulk(queue, [
      { tenant: 'acme', name: 'n', data: 'stale' },
      { tenant: 'acme', name: 'n', data: 'next' },
    ]);
    const stale = await engine.fetch(queue, 'acme', 'w', 100);
    await sleep(300); // let the lock expire (no sweep has run: the job is still listed active)
    const taken = await engine.complete(stale!, 'late', next);
    expect(taken?.data).toBe('next');
    expect(await engine.getJob(queue, 'acme', stale!.id)).toMatchObject({ state: 'active', result: null });
    expect(await engine.complete(taken!, 'ok')).toBeNull();
    expect(await engine.counts(queue, 'acme')).toMatchObject({ completed: 1 });
  });
  it('takes the next job of another tenant’s partition when fetchNext names it', async () => {
    await engine.enqueueBulk(queue, [
      { tenant: 'acme', name: 'n', data: 'a1' },
      { tenant: 'acme', name: 'n', data: 'a2' },
      { tenant: 'beta', name: 'n', data: 'b1', priority: 3 },
      { tenant: 'beta', name: 'n', data: 'b0', priority: 1 },
    ]);
    const a1 = await engine.fetch(queue, 'acme', 'w', LOCK);
    const b0 = await engine.complete(a1!, 'done a1', { fetchNext: { ...next.fetchNext, tenant: 'beta' } });
    expect(b0).toMatchObject({ queue, tenant: 'beta', data: 'b0', attempt: 1 });
    expect(await engine.getJob(queue, 'acme', a1!.id)).toMatchObject({
      state: 'completed',
      result: 'done a1',
    });
    // Locked for us: its lock extends and it settles like any fetched job.
    expect(await engine.extendLocks([b0!], LOCK)).toEqual([]);
    expect(await engine.counts(queue, 'beta')).toMatchObject({ active: 1, waiting: 1 });
    expect(await engine.counts(queue, 'acme')).toMatchObject({ active: 0, waiting: 1, completed: 1 });
    // And back: beta's job completes, acme's next is taken.
    const a2 = await engine.complete(b0!, 'done b0', { fetchNext: { ...next.fetchNext, tenant: 'acme' } });
    expect(a2?.data).toBe('a2');
    expect(await engine.fail(a2!, new Error('no'))).toBe('failed');
    // A tenant with nothing ready answers null, as fetch would, and the completion still holds.
    const b1 = await engine.fetch(queue, 'beta', 'w', LOCK);
    expect(
      await engine.complete(b1!, 'done b1', { fetchNext: { ...next.fetchNext, tenant: 'acme' } }),
    ).toBeNull();
    expect(await engine.counts(queue, 'beta')).toEqual({
      waiting: 0,
      active: 0,
      delayed: 0,
      completed: 2,
      failed: 0,
    });
    expect(await engine.counts(queue, 'acme')).toEqual({
      waiting: 0,
      active: 0,
      delayed: 0,
      completed: 1,
      failed: 1,
    });
    await expect(
      engine.complete(b1!, null, { fetchNext: { ...next.fetchNext, tenant: 'bad slug' } }),
    ).rejects.toThrow(ValidationError);
  });

  it('takes another tenant’s next job even when the completed one’s lock was lost, and respects its cap', async () => {
    await engine.enqueueBulk(queue, [
      { tenant: 'acme', name: 'n', data: 'stale' },
      { tenant: 'beta', name: 'n', data: 'b1' },
      { tenant: 'beta', name: 'n', data: 'b2' },
    ]);
    const stale = await engine.fetch(queue, 'acme', 'w', 100);
    await sleep(300);
    const b1 = await engine.complete(stale!, 'late', { fetchNext: { ...next.fetchNext, tenant: 'beta' } });
    expect(b1?.data).toBe('b1');
    expect(await engine.getJob(queue, 'acme', stale!.id)).toMatchObject({ state: 'active', result: null });
    // beta at its fleet-wide cap of 1: nothing more is taken from it.
    await engine.setTenantConcurrency(queue, 'beta', 1);
    await engine.enqueue(queue, { tenant: 'acme', name: 'n', data: 'a' });
    const a = await engine.fetch(queue, 'acme', 'w', LOCK);
    expect(await engine.complete(a!, null, { fetchNext: { ...next.fetchNext, tenant: 'beta' } })).toBeNull();
    expect(await engine.counts(queue, 'beta')).toMatchObject({ active: 1, waiting: 1 });
  });

  it('counts a batch job completed with fetchNext naming another tenant once', async () => {
    const batchId = uniqueName('batch');
    await engine.enqueueBulk(queue, [
      { tenant: 'acme', name: 'n', data: 1, batchId },
      { tenant: 'beta', name: 'n', data: 2, batchId },
    ]);
    const first = await engine.fetch(queue, 'acme', 'w', LOCK);
    const second = await engine.complete(first!, null, { fetchNext: { ...next.fetchNext, tenant: 'beta' } });
    expect(second?.data).toBe(2);
    expect(
      await engine.complete(second!, null, { fetchNext: { ...next.fetchNext, tenant: 'acme' } }),
    ).toBeNull();
    expect(await engine.batchProgress(batchId)).toEqual({ total: 2, completed: 2, failed: 0, pending: 0 });
  });

  it('counts each job of a batch once when it is completed with fetchNext', async () => {
    const batchId = uniqueName('batch');
    await engine.enqueueBulk(
      queue,
      [1, 2, 3].map((data) => ({ tenant: 'acme', name: 'n', data, batchId })),
    );
    const seen: unknown[] = [];
    for (let job = await engine.fetch(queue, 'acme', 'w', LOCK); job !== null; ) {
      seen.push(job.data);
      expect(job.batchId).toBe(batchId);
      job = await engine.complete(job, null, next);
    }
    expect(seen).toEqual([1, 2, 3]);
    expect(await engine.batchProgress(batchId)).toEqual({ total: 3, completed: 3, failed: 0, pending: 0 });
  });
});
