/**
 * The in-memory engine: one process, no server. Used by tests and the zero-setup demo;
 * it passes the same conformance suite as the Redis engine.
 *
 * Each (queue, tenant) partition keeps its waiting jobs in a heap ordered by
 * (priority, enqueue order), so "1 is highest, unprioritised FIFO after" falls out of
 * one comparison. Delayed jobs of every partition share one heap and one timer. The
 * ready index is, per queue, the set of tenants whose partition has a waiting job.
 */
import { ClosedError } from '../../reporting/errors.js';
import { MAX_DURATION_MS } from '../../validate.js';
import type {
  ActiveJob,
  BatchProgress,
  CompleteOptions,
  EnqueueJob,
  EnqueueOutcome,
  FailOutcome,
  JobCounts,
  JobInfo,
  QueueEngine,
} from '../engine.js';
import { getOrCreate } from '../get-or-create.js';
import {
  backoffDelay,
  checkCaps,
  checkJobId,
  checkLockDuration,
  checkQueueName,
  checkTenant,
  normaliseJobs,
  serialiseResult,
} from '../job-input.js';
import { MinHeap } from './min-heap.js';
import {
  type MemoryEngineOptions,
  type ResolvedMemoryEngineOptions,
  resolveMemoryEngineOptions,
} from './options.js';
import { type JobRecord, jobInfo, MemoryPartition, newJobRecord } from './partition.js';

export type { MemoryEngineOptions, ResolvedMemoryEngineOptions } from './options.js';

type MemoryLease = { token: string };

/** A {@link QueueEngine} that keeps everything in this process's memory. */
export class MemoryEngine implements QueueEngine {
  readonly name = 'memory' as const;
  readonly options: ResolvedMemoryEngineOptions;

  readonly #partitions = new Map<string, Map<string, MemoryPartition>>();
  readonly #ready = new Map<string, Set<string>>();
  readonly #waiters = new Map<string, Set<() => void>>();
  readonly #delayed = new MinHeap<JobRecord>(
    (a, b) => a.dueAt < b.dueAt || (a.dueAt === b.dueAt && a.seq < b.seq),
  );
  readonly #batches = new Map<string, { total: number; completed: number; failed: number }>();
  #timer: NodeJS.Timeout | null = null;
  #timerDueAt = Number.POSITIVE_INFINITY;
  #seq = 0;
  #closePromise: Promise<void> | null = null;

  constructor(options: MemoryEngineOptions = {}) {
    this.options = resolveMemoryEngineOptions(options);
  }

  async enqueue<Data>(queue: string, job: EnqueueJob<Data>): Promise<string> {
    const [id] = await this.enqueueBulk(queue, [job]);
    return id!;
  }

  async enqueueBulk<Data>(queue: string, jobs: readonly EnqueueJob<Data>[]): Promise<string[]> {
    return (await this.enqueueCounted(queue, jobs)).ids;
  }

  async enqueueCounted<Data>(queue: string, jobs: readonly EnqueueJob<Data>[]): Promise<EnqueueOutcome> {
    this.#checkOpen();
    let added = 0;
    const normalised = normaliseJobs(queue, jobs, this.options.maxDataBytes);
    const now = Date.now();
    const woken = new Set<string>();
    const ids = normalised.map((job) => {
      const partition = this.#partition(queue, job.tenant, true);
      const id = job.jobId ?? `m${++this.#seq}`;
      if (partition.jobs.has(id)) return id;
      const record = newJobRecord(id, job, queue, ++this.#seq, now);
      partition.jobs.set(id, record);
      added++;
      if (job.batchId !== null) this.#batch(job.batchId).total += 1;
      if (job.delayMs > 0) this.#delay(partition, record);
      else this.#makeWaiting(partition, record, woken);
      return id;
    });
    for (const q of woken) this.#wake(q);
    return { ids, added };
  }

  async readyTenants(queue: string): Promise<string[]> {
    this.#checkOpen();
    return [...(this.#ready.get(checkQueueName(queue)) ?? [])];
  }

  async waitForReady(queue: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    this.#checkOpen();
    checkQueueName(queue);
    if (signal?.aborted) return;
    return new Promise((resolve) => {
      const waiters = getOrCreate(this.#waiters, queue, () => new Set<() => void>());
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, timeoutMs));
      signal?.addEventListener('abort', done, { once: true });
      waiters.add(done);
    });
  }

  async fetch(
    queue: string,
    tenant: string,
    workerId: string,
    lockDurationMs: number,
  ): Promise<ActiveJob | null> {
    this.#checkOpen();
    checkLockDuration(lockDurationMs);
    const partition = this.#partition(checkQueueName(queue), checkTenant(tenant), false);
    if (!partition) return null;
    if (partition.atCap) return null;
    const record = partition.waiting.pop();
    if (partition.waiting.size === 0) this.#ready.get(queue)?.delete(tenant);
    if (!record) return null;
    const token = `${workerId}:${++this.#seq}`;
    record.state = 'active';
    record.lock = { token, until: Date.now() + lockDurationMs };
    partition.active.set(record.id, record);
    const lease: MemoryLease = { token };
    return {
      id: record.id,
      queue,
      tenant,
      name: record.job.name,
      // Parsed afresh for every run, so a handler's mutations never leak into a retry.
      data: JSON.parse(record.job.json),
      attempt: record.attemptsMade + 1,
      maxAttempts: record.job.attempts,
      enqueuedAt: record.enqueuedAt,
      batchId: record.job.batchId,
      lease,
    };
  }

  async complete(job: ActiveJob, result: unknown, options: CompleteOptions = {}): Promise<ActiveJob | null> {
    this.#checkOpen();
    const next = options.fetchNext;
    if (next !== undefined) checkLockDuration(next.lockDurationMs);
    const held = this.#held(job);
    if (held) {
      held.record.result = serialiseResult(result);
      this.#finish(held.partition, held.record, 'completed');
    }
    // A lost lock changes nothing of the job, but the next one is still the caller's to take.
    return next === undefined
      ? null
      : this.fetch(job.queue, next.tenant ?? job.tenant, next.workerId, next.lockDurationMs);
  }

  async fail(job: ActiveJob, error: Error, options: { unrecoverable?: boolean } = {}): Promise<FailOutcome> {
    this.#checkOpen();
    const held = this.#held(job);
    // Lost lock: the job is (or will be) handed out again, so it is in effect retrying.
    if (!held) return 'retrying';
    const { partition, record } = held;
    record.attemptsMade += 1;
    record.error = { message: String(error?.message ?? error), stack: error?.stack ?? null };
    if (options.unrecoverable || record.attemptsMade >= record.job.attempts) {
      this.#finish(partition, record, 'failed');
      return 'failed';
    }
    partition.active.delete(record.id);
    record.lock = null;
    const delay = backoffDelay(record.job.backoff, record.attemptsMade);
    record.dueAt = Date.now() + delay;
    if (delay > 0) this.#delay(partition, record);
    else this.#makeWaiting(partition, record);
    return 'retrying';
  }

  async extendLocks(jobs: readonly ActiveJob[], lockDurationMs: number): Promise<string[]> {
    this.#checkOpen();
    checkLockDuration(lockDurationMs);
    const until = Date.now() + lockDurationMs;
    const lost: string[] = [];
    for (const job of jobs) {
      const held = this.#held(job);
      if (held) held.record.lock!.until = until;
      else lost.push(job.id);
    }
    return lost;
  }

  async recoverStalled(queue: string): Promise<number> {
    this.#checkOpen();
    const now = Date.now();
    let moved = 0;
    for (const partition of this.#partitions.get(checkQueueName(queue))?.values() ?? []) {
      for (const record of [...partition.active.values()]) {
        if (record.lock!.until > now) continue;
        moved += 1;
        record.stalledCount += 1;
        if (record.stalledCount > this.options.maxStalledCount) {
          record.error = { message: 'job stalled more than allowable limit', stack: null };
          this.#finish(partition, record, 'failed');
        } else {
          partition.active.delete(record.id);
          record.lock = null;
          this.#makeWaiting(partition, record);
        }
      }
    }
    return moved;
  }

  async setTenantConcurrency(queue: string, tenant: string, max: number | null): Promise<void> {
    return this.setTenantConcurrencies(queue, new Map([[tenant, max]]));
  }

  async setTenantConcurrencies(queue: string, caps: ReadonlyMap<string, number | null>): Promise<void> {
    this.#checkOpen();
    checkQueueName(queue);
    for (const [tenant, cap] of checkCaps(caps)) {
      const partition = this.#partition(queue, tenant, true);
      partition.cap = cap;
      if (partition.waiting.size > 0) this.#wake(queue);
    }
  }

  async counts(queue: string, tenant: string): Promise<JobCounts> {
    this.#checkOpen();
    const p = this.#partition(checkQueueName(queue), checkTenant(tenant), false);
    if (!p) return { waiting: 0, active: 0, delayed: 0, completed: 0, failed: 0 };
    return {
      waiting: p.waiting.size,
      active: p.active.size,
      delayed: p.delayed,
      completed: p.completed,
      failed: p.failed,
    };
  }

  async getJob(queue: string, tenant: string, id: string): Promise<JobInfo | null> {
    this.#checkOpen();
    const partition = this.#partition(checkQueueName(queue), checkTenant(tenant), false);
    const record = partition?.jobs.get(checkJobId(id));
    return record ? jobInfo(record, tenant) : null;
  }

  /**
   * Every partition, by queue then tenant, for inspection (the dashboard's bull-board
   * adapter): read them, never change them.
   */
  partitions(): ReadonlyMap<string, ReadonlyMap<string, MemoryPartition>> {
    return this.#partitions;
  }

  async batchProgress(batchId: string): Promise<BatchProgress> {
    this.#checkOpen();
    const batch = this.#batches.get(batchId) ?? { total: 0, completed: 0, failed: 0 };
    return { ...batch, pending: batch.total - batch.completed - batch.failed };
  }

  async purge(queue: string, tenant?: string): Promise<string[]> {
    this.#checkOpen();
    const partitions = this.#partitions.get(checkQueueName(queue));
    if (!partitions) return [];
    const slugs = tenant === undefined ? [...partitions.keys()] : [checkTenant(tenant)];
    // Their delayed jobs stay in the shared heap until due; #promoteDue skips them then.
    const purged = slugs.filter((slug) => partitions.has(slug) && partitions.delete(slug));
    for (const slug of purged) this.#ready.get(queue)?.delete(slug);
    return purged.sort();
  }

  close(): Promise<void> {
    this.#closePromise ??= (async () => {
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = null;
      // Release anyone waiting so worker loops notice the close promptly.
      for (const waiters of this.#waiters.values()) for (const wake of [...waiters]) wake();
    })();
    return this.#closePromise;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #checkOpen(): void {
    if (this.#closePromise) throw new ClosedError('MemoryEngine');
  }

  #partition(queue: string, tenant: string, create: true): MemoryPartition;
  #partition(queue: string, tenant: string, create: false): MemoryPartition | undefined;
  #partition(queue: string, tenant: string, create: boolean): MemoryPartition | undefined {
    if (!create) return this.#partitions.get(queue)?.get(tenant);
    return getOrCreate(
      getOrCreate(this.#partitions, queue, () => new Map()),
      tenant,
      () => new MemoryPartition(),
    );
  }

  /**
   * The job's record and partition if `job`'s lease still holds its lock. An expired
   * lock counts as lost even before a sweep puts the job back, as on Redis, where the
   * lock key has simply expired.
   */
  #held(job: ActiveJob): { partition: MemoryPartition; record: JobRecord } | null {
    const partition = this.#partition(job.queue, job.tenant, false);
    const record = partition?.active.get(job.id);
    const lease = job.lease as MemoryLease | undefined;
    if (!partition || !record?.lock || record.lock.token !== lease?.token) return null;
    if (record.lock.until <= Date.now()) return null;
    return { partition, record };
  }

  #batch(batchId: string): { total: number; completed: number; failed: number } {
    return getOrCreate(this.#batches, batchId, () => ({ total: 0, completed: 0, failed: 0 }));
  }

  #makeWaiting(partition: MemoryPartition, record: JobRecord, woken?: Set<string>): void {
    record.state = 'waiting';
    partition.waiting.push(record);
    getOrCreate(this.#ready, record.queue, () => new Set<string>()).add(record.job.tenant);
    if (woken) woken.add(record.queue);
    else this.#wake(record.queue);
  }

  #delay(partition: MemoryPartition, record: JobRecord): void {
    record.state = 'delayed';
    partition.delayed += 1;
    this.#delayed.push(record);
    this.#armTimer();
  }

  #armTimer(): void {
    const next = this.#delayed.peek();
    if (!next || this.#closePromise || next.dueAt >= this.#timerDueAt) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timerDueAt = next.dueAt;
    // A job may be delayed for longer than a timer holds (it would fire at once, and again
    // and again): wait at most that long, then look again.
    const wait = Math.min(MAX_DURATION_MS, Math.max(0, next.dueAt - Date.now()));
    this.#timer = setTimeout(() => this.#promoteDue(), wait);
    this.#timer.unref();
  }

  #promoteDue(): void {
    this.#timer = null;
    this.#timerDueAt = Number.POSITIVE_INFINITY;
    const now = Date.now();
    const woken = new Set<string>();
    for (let next = this.#delayed.peek(); next && next.dueAt <= now; next = this.#delayed.peek()) {
      this.#delayed.pop();
      const partition = this.#partition(next.queue, next.job.tenant, false);
      // A job of a purged partition: nothing to promote.
      if (partition?.jobs.get(next.id) !== next) continue;
      partition.delayed -= 1;
      this.#makeWaiting(partition, next, woken);
    }
    for (const queue of woken) this.#wake(queue);
    this.#armTimer();
  }

  #finish(partition: MemoryPartition, record: JobRecord, state: 'completed' | 'failed'): void {
    if (record.job.batchId !== null) this.#batch(record.job.batchId)[state] += 1;
    // Bodies are kept up to a bound; the counts are kept forever.
    partition.finish(
      record,
      state,
      state === 'completed' ? this.options.keepCompleted : this.options.keepFailed,
    );
    // A capped tenant that was full may be fetchable again now.
    if (partition.cap !== null && partition.waiting.size > 0) this.#wake(record.queue);
  }

  #wake(queue: string): void {
    const waiters = this.#waiters.get(queue);
    if (waiters) for (const wake of [...waiters]) wake();
  }
}
