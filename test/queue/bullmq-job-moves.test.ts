/**
 * The fleet's own job moves (src/queue/bullmq/job-moves.ts) leave a partition's data as
 * BullMQ's own scripts leave a queue's: the same job-hash fields, lock, active list,
 * completed set, retention and metrics, so that BullMQ's `Job`, `Queue` and bull-board read
 * fleet jobs as their own. Each case runs raw BullMQ (a plain `Queue` and `Worker`) and the
 * engine side by side and compares what Redis holds.
 */
import { Job, Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BullMqEngine } from '../../src/queue/bullmq/bullmq-engine.js';
import { UNPRIORITISED } from '../../src/queue/bullmq/jobs/translate.js';
import { partitionName } from '../../src/queue/bullmq/partition/partitions.js';
import { REDIS_URL, uniqueName } from '../support/services.js';
import { until } from '../support/wait.js';
import { deletePrefix } from './engines.js';

const LOCK = 30_000;
const KEEP = 3;
/** Job-hash fields whose values differ run by run (times, ids, the stored options). */
const VARYING = new Set(['timestamp', 'processedOn', 'finishedOn', 'opts', 'pb', 'data', 'name']);

/** A job hash's fields, with the varying ones reduced to being there. */
function shape(hash: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(hash)
      .filter(([field]) => field !== 'priority')
      .map(([field, value]) => [field, VARYING.has(field) ? '(set)' : value]),
  );
}

describe('BullMQ engine: its own job moves against BullMQ’s', { timeout: 60_000 }, () => {
  const rawPrefix = uniqueName('moves-raw');
  const fleetPrefix = uniqueName('moves-fleet');
  const redis = new Redis(REDIS_URL);
  let engine: BullMqEngine;
  let raw: Queue;
  let rawJobIds: string[];
  const opened: Queue[] = [];
  /** BullMQ's own Queue on the tenant's partition of `queue`. */
  const partitionQueue = (queue: string) => {
    const bull = new Queue(partitionName(queue, 'acme'), {
      connection: redis,
      prefix: engine.partitionPrefix(queue, 'acme'),
    });
    opened.push(bull);
    return bull;
  };

  beforeAll(async () => {
    // Raw BullMQ: five prioritised jobs (as the fleet stores every job), run by a Worker
    // that keeps the last KEEP completed, with metrics, as the engine's partitions do.
    raw = new Queue('raw', { connection: redis, prefix: rawPrefix });
    const added = await raw.addBulk(
      Array.from({ length: 5 }, (_, i) => ({ name: 'n', data: { i }, opts: { priority: 7 } })),
    );
    rawJobIds = added.map((job) => job.id!);
    let done = 0;
    const worker = new Worker('raw', async (job) => ({ ran: job.data.i }), {
      connection: { url: REDIS_URL, maxRetriesPerRequest: null },
      prefix: rawPrefix,
      removeOnComplete: { count: KEEP },
      metrics: { maxDataPoints: 60 },
    });
    worker.on('completed', () => {
      done += 1;
    });
    await until(() => done === 5, 'the raw Worker to complete five jobs', { timeoutMs: 20_000 });
    await worker.close();
    engine = new BullMqEngine({ connection: REDIS_URL, prefix: fleetPrefix, keepCompleted: KEEP });
  });

  afterAll(async () => {
    await raw?.close();
    await Promise.all(opened.map((bull) => bull.close()));
    await engine?.close();
    await deletePrefix(rawPrefix);
    await deletePrefix(fleetPrefix);
    redis.disconnect();
  });

  it('completes and takes jobs leaving what BullMQ’s Worker leaves', async () => {
    const queue = uniqueName('q');
    await engine.enqueueBulk(
      queue,
      Array.from({ length: 5 }, (_, i) => ({ tenant: 'acme', name: 'n', data: { i }, priority: 7 })),
    );
    const bull = partitionQueue(queue);
    const ids: string[] = [];
    const lastReady: (boolean | undefined)[] = [];
    // The queue's completed jobs while the partition's last job runs: kept in the queue's
    // own set (member acme:<id>), not in the partition's `completed` set as BullMQ keeps them.
    const finishedKey = `${fleetPrefix}:{${queue}}:finished`;
    let completedBeforeLast: string[] = [];
    let partitionCompleted = -1;
    let job = await engine.fetch(queue, 'acme', 'w', LOCK);
    while (job !== null) {
      ids.push(job.id);
      lastReady.push(job.lastReady);
      if (ids.length === 5) {
        completedBeforeLast = (await redis.zrange(finishedKey, 0, -1)).map((member) =>
          member.slice('acme:'.length),
        );
        partitionCompleted = await redis.exists(bull.toKey('completed'));
      }
      job = await engine.complete(
        job,
        { ran: (job.data as { i: number }).i },
        {
          fetchNext: { workerId: 'w', lockDurationMs: LOCK },
        },
      );
    }
    expect(ids).toHaveLength(5);
    // Prioritised jobs left after a take: not the last; the fifth is.
    expect(lastReady).toEqual([false, false, false, false, true]);
    const rawKey = (name: string) => `${rawPrefix}:raw:${name}`;
    const fleetKey = (name: string) => bull.toKey(name);

    // The last job: the same fields with the same values (but for times and ids).
    const rawLast = await redis.hgetall(rawKey(rawJobIds[4]!));
    const fleetLast = await redis.hgetall(fleetKey(ids[4]!));
    expect(shape(fleetLast)).toEqual(shape(rawLast));
    expect(fleetLast).toMatchObject({ returnvalue: '{"ran":4}', atm: '1', ats: '1', delay: '0' });
    expect(Number(fleetLast.finishedOn)).toBeGreaterThanOrEqual(Number(fleetLast.processedOn));

    // Retention: KEEP completed, the older job hashes gone, on both sides: the raw queue's
    // in its `completed` set, the fleet's in the queue's. (Scored by finish time in ms: of
    // jobs finished in one millisecond, the lower id counts older.)
    expect(partitionCompleted).toBe(0);
    expect(completedBeforeLast).toHaveLength(KEEP);
    const dropped = ids.slice(0, 4).filter((id) => !completedBeforeLast.includes(id));
    expect(dropped).toHaveLength(4 - KEEP);
    expect(await redis.exists(...dropped.map(fleetKey))).toBe(0);
    expect((await redis.zrange(rawKey('completed'), 0, -1)).sort()).toEqual(rawJobIds.slice(-KEEP).sort());
    // Nothing active, no lock left, nothing suspected stalled; the metrics counted five.
    for (const key of [fleetKey, rawKey]) {
      expect(await redis.llen(key('active'))).toBe(0);
      expect(await redis.scard(key('stalled'))).toBe(0);
      expect(await redis.hget(key('metrics:completed'), 'count')).toBe('5');
      expect(await redis.llen(key('metrics:completed:data'))).toBeLessThanOrEqual(1);
    }
    expect(await redis.exists(...ids.map((id) => fleetKey(`${id}:lock`)))).toBe(0);
    // BullMQ's own API reads the fleet's completed job as completed, with its result.
    const last = await Job.fromId(bull, ids[4]!);
    expect(last?.returnvalue).toEqual({ ran: 4 });
    expect(await bull.getJobCounts('active', 'prioritized')).toEqual({
      active: 0,
      prioritized: 0,
    });
    expect(await engine.counts(queue, 'acme')).toEqual({
      waiting: 0,
      active: 0,
      delayed: 0,
      completed: 5,
      failed: 0,
    });
  });

  it('keeps unprioritised jobs in BullMQ’s wait list, taken after prioritised ones and after jobs an older version stored prioritised', async () => {
    const queue = uniqueName('q');
    await engine.enqueue(queue, { tenant: 'acme', name: 'n', data: 'new-1' });
    const bull = partitionQueue(queue);
    // As the engine stored an unprioritised job before it used the wait list.
    const old = await bull.add('n', 'old', { priority: UNPRIORITISED });
    expect(await engine.getJob(queue, 'acme', old.id!)).toMatchObject({ priority: null, state: 'waiting' });
    await engine.enqueueBulk(queue, [
      { tenant: 'acme', name: 'n', data: 'new-2' },
      { tenant: 'acme', name: 'n', data: 'p3', priority: 3 },
    ]);
    expect(await redis.llen(bull.toKey('wait'))).toBe(2);
    expect(await redis.zcard(bull.toKey('prioritized'))).toBe(2);
    const ran: unknown[] = [];
    let job = await engine.fetch(queue, 'acme', 'w', LOCK);
    while (job !== null) {
      ran.push([job.data, job.lastReady]);
      job = await engine.complete(job, null, { fetchNext: { workerId: 'w', lockDurationMs: LOCK } });
    }
    // Only the job taken with nothing left in prioritized nor in wait is the last.
    expect(ran).toEqual([
      ['p3', false],
      ['old', false],
      ['new-1', false],
      ['new-2', true],
    ]);
    // The priority counter goes with the last prioritised job, as BullMQ's fetch drops it.
    expect(await redis.exists(bull.toKey('pc'))).toBe(0);
  });

  it('marks the last job as the fleet’s own fetch does when BullMQ’s moveToFinished takes it (a job with a deduplication id)', async () => {
    const queue = uniqueName('q');
    const bull = partitionQueue(queue);
    await bull.add('n', 'dedup', { deduplication: { id: 'd1' } });
    await engine.enqueueBulk(queue, [
      { tenant: 'acme', name: 'n', data: 'second' },
      { tenant: 'acme', name: 'n', data: 'third' },
    ]);
    const first = await engine.fetch(queue, 'acme', 'w', LOCK);
    expect([first?.data, first?.lastReady]).toEqual(['dedup', false]);
    const fetchNext = { fetchNext: { workerId: 'w', lockDurationMs: LOCK } };
    const second = await engine.complete(first!, null, fetchNext);
    expect([second?.data, second?.lastReady]).toEqual(['second', false]);
    const third = await engine.complete(second!, null, fetchNext);
    expect([third?.data, third?.lastReady]).toEqual(['third', true]);
    expect(await engine.complete(third!, null, fetchNext)).toBeNull();
    // BullMQ's moveToFinished takes the partition's last job: marked last all the same.
    await bull.add('n', 'dedup-2', { deduplication: { id: 'd2' } });
    await engine.enqueue(queue, { tenant: 'acme', name: 'n', data: 'fourth' });
    const fifth = await engine.fetch(queue, 'acme', 'w', LOCK);
    expect([fifth?.data, fifth?.lastReady]).toEqual(['dedup-2', false]);
    const fourth = await engine.complete(fifth!, null, fetchNext);
    expect([fourth?.data, fourth?.lastReady]).toEqual(['fourth', true]);
    expect(await engine.complete(fourth!, null, fetchNext)).toBeNull();
    expect(await engine.counts(queue, 'acme')).toMatchObject({ waiting: 0, active: 0, completed: 5 });
  });

  it('refuses a completion whose lock is not the caller’s, as BullMQ does, and keeps the job', async () => {
    const queue = uniqueName('q');
    await engine.enqueueBulk(queue, [
      { tenant: 'acme', name: 'n', data: 1 },
      { tenant: 'acme', name: 'n', data: 2 },
    ]);
    const job = await engine.fetch(queue, 'acme', 'w', LOCK);
    const bull = partitionQueue(queue);
    // Someone else holds the lock now (a stalled sweep and another worker, say).
    await redis.set(bull.toKey(`${job!.id}:lock`), 'someone-else');
    const next = await engine.complete(job!, 'late', { fetchNext: { workerId: 'w', lockDurationMs: LOCK } });
    // The refused completion took nothing with it: the next job is fetched the usual way.
    expect(next?.data).toBe(2);
    expect(await redis.hget(bull.toKey(job!.id), 'finishedOn')).toBeNull();
    expect(await redis.lrange(bull.toKey('active'), 0, -1)).toContain(job!.id);
  });
});
