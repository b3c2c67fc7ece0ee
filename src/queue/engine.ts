/**
 * The contract every queue engine (memory, BullMQ, pg-boss) fulfils. A logical queue
 * (e.g. `reports`) is partitioned by tenant: each engine keeps one partition per
 * (queue, tenant) plus an index of the tenants that have jobs ready, so the fleet
 * worker can pick tenants fairly and fetch from exactly the partition it picked.
 *
 * Engines know nothing of tenancy (orgs, pools): the fleet checks tenants before it
 * enqueues, and the worker decides which tenant to fetch from.
 */

/** The engines tenant-fleet ships. */
export type EngineName = 'memory' | 'bullmq' | 'pgboss';

/** How a failed job waits before its next attempt. */
export interface BackoffOptions {
  /** @default 'exponential' */
  type: 'exponential' | 'fixed';
  /** Base delay: the wait before attempt 2; exponential doubles it for each attempt after. */
  delayMs: number;
}

/** Per-job options, the same on every engine. */
export interface JobOptions {
  /** Idempotency key: a second enqueue with the same id (in the same partition) is a no-op. */
  jobId?: string;
  /** Run no earlier than this many milliseconds from now. @default 0 */
  delayMs?: number;
  /** Within one tenant's partition: 1 is the highest priority; unset runs after prioritised jobs as FIFO. */
  priority?: number;
  /** Attempts in all, the first included. @default 1 */
  attempts?: number;
  /** @default { type: 'exponential', delayMs: 1000 } when attempts > 1 */
  backoff?: BackoffOptions;
  /** Groups jobs for progress reporting (`batchProgress`); set by scheduler fan-outs. */
  batchId?: string;
}

/** What `enqueueCounted` did: the ids in order, and how many of the jobs were new. */
export interface EnqueueOutcome {
  ids: string[];
  added: number;
}

/** One job to enqueue. */
export interface EnqueueJob<Data = unknown> extends JobOptions {
  /** The tenant's slug (the fleet has checked it exists and is active). */
  tenant: string;
  /** The job's name within the queue, e.g. `render`. */
  name: string;
  data: Data;
}

/**
 * A job handed to one worker, which now holds its lock. The engine-specific handle
 * that `complete`/`fail`/`extendLocks` need travels in `lease`.
 */
export interface ActiveJob<Data = unknown> {
  readonly id: string;
  readonly queue: string;
  readonly tenant: string;
  readonly name: string;
  readonly data: Data;
  /** 1 on the first run, 2 on the first retry… */
  readonly attempt: number;
  /** Attempts in all, the first included. */
  readonly maxAttempts: number;
  /** Epoch milliseconds when the job was enqueued. */
  readonly enqueuedAt: number;
  readonly batchId: string | null;
  /**
   * True when, as it was taken, no other job of its partition was waiting or delayed: the
   * worker ends the tenant's turn with this job rather than ask for a next one it would
   * not find. Engines that cannot tell leave it out.
   */
  readonly lastReady?: boolean;
  /** Engine-private: the lock token and whatever else the engine needs. */
  readonly lease: unknown;
}

/** Options of {@link QueueEngine.complete}. */
export interface CompleteOptions {
  /**
   * Take a next ready job too, locked as `fetch(queue, tenant, workerId, lockDurationMs)`
   * would: of the same partition, or of `tenant`'s partition of the same queue.
   */
  fetchNext?: { workerId: string; lockDurationMs: number; tenant?: string };
}

/** What became of a failed job. */
export type FailOutcome = 'retrying' | 'failed';

/** Job counts of one partition. */
export interface JobCounts {
  waiting: number;
  active: number;
  delayed: number;
  completed: number;
  failed: number;
}

/** Where a job is in its life. */
export type JobState = 'waiting' | 'delayed' | 'active' | 'completed' | 'failed';

/**
 * A read-only view of one job, for inspection (tests, dashboard). Finished jobs are
 * kept only up to an engine-specific bound, so an old finished job may read as null.
 */
export interface JobInfo<Data = unknown> {
  readonly id: string;
  readonly queue: string;
  readonly tenant: string;
  readonly name: string;
  readonly data: Data;
  readonly state: JobState;
  /** Attempts that ended in a failure so far. */
  readonly attemptsMade: number;
  readonly maxAttempts: number;
  readonly priority: number | null;
  /** Epoch milliseconds when the job was enqueued. */
  readonly enqueuedAt: number;
  /** Epoch milliseconds when it completed or finally failed; null before. */
  readonly finishedAt: number | null;
  readonly batchId: string | null;
  /** The handler's result once completed; null before. */
  readonly result: unknown;
  /** The last failure's message and stack; null if it never failed. */
  readonly error: { message: string; stack: string | null } | null;
}

/** Progress of a batch (a fan-out): `pending = total − completed − failed`. */
export interface BatchProgress {
  total: number;
  completed: number;
  failed: number;
  pending: number;
}

/** The contract of a queue engine. */
export interface QueueEngine {
  readonly name: EngineName;

  /** Adds one job to the (queue, tenant) partition; resolves to its id. */
  enqueue<Data>(queue: string, job: EnqueueJob<Data>): Promise<string>;
  /** Adds many jobs at once, in as few round trips as the engine allows; ids in order. */
  enqueueBulk<Data>(queue: string, jobs: readonly EnqueueJob<Data>[]): Promise<string[]>;

  /**
   * The tenants of `queue` that may have a job ready now. A hint, kept cheap: a tenant
   * listed here may turn out empty on `fetch`, but a tenant with a ready job is never
   * left out for longer than the engine's poll interval.
   */
  readyTenants(queue: string): Promise<string[]>;
  /**
   * Resolves when a job may have become ready in `queue` (an enqueue, a delay elapsed,
   * a retry) since the call, after `timeoutMs` at the latest, or at once when `signal`
   * aborts. A caller that starts the wait, then reads {@link readyTenants}, then awaits
   * the wait misses nothing: what fell due after the call either was read or wakes it.
   */
  waitForReady(queue: string, timeoutMs: number, signal?: AbortSignal): Promise<void>;

  /**
   * Takes the next ready job of one tenant's partition and locks it for `lockDurationMs`
   * on behalf of `workerId`; null when the partition has nothing ready (or is at its
   * fleet-wide concurrency cap).
   */
  fetch(queue: string, tenant: string, workerId: string, lockDurationMs: number): Promise<ActiveJob | null>;
  /**
   * Marks an active job completed with its result. With `fetchNext`, also takes the next
   * ready job of the same partition (or of `fetchNext.tenant`'s) for `fetchNext.workerId`
   * and resolves to it (null when there is none, as `fetch` would answer), in the same
   * round trip where the engine allows (BullMQ: one script call, as a plain BullMQ Worker
   * does). Without it, resolves to null.
   */
  complete(job: ActiveJob, result: unknown, options?: CompleteOptions): Promise<ActiveJob | null>;
  /**
   * Marks an active job failed. It is retried with its backoff while attempts remain,
   * unless `unrecoverable`; the error's message and stack are kept.
   */
  fail(job: ActiveJob, error: Error, options?: { unrecoverable?: boolean }): Promise<FailOutcome>;
  /**
   * Extends the locks of jobs this worker holds; resolves to the ids whose lock was lost.
   * A caller's `jobId` is unique only within its partition, so a caller holding jobs of
   * several tenants passes one partition's jobs per call to tell the answers apart.
   */
  extendLocks(jobs: readonly ActiveJob[], lockDurationMs: number): Promise<string[]>;
  /**
   * Puts back jobs whose lock expired (their worker died) so they run again; resolves
   * to how many it moved. Workers call it periodically.
   */
  recoverStalled(queue: string): Promise<number>;

  /** Caps the jobs of one tenant running at once across the whole fleet; null lifts it. */
  setTenantConcurrency(queue: string, tenant: string, max: number | null): Promise<void>;
  /**
   * `setTenantConcurrency` for many tenants of one queue (tenant slug to cap, null lifts):
   * a worker seeing thousands of tenants at once sets them all in one call. Resolves once
   * all are written; rejects if any write failed (the others may have been written).
   * Calls land in the order they were made: a tenant's cap asked after an earlier call
   * for it, still under way, is never overwritten by that earlier one.
   */
  setTenantConcurrencies(queue: string, caps: ReadonlyMap<string, number | null>): Promise<void>;
  /** Job counts of one partition. */
  counts(queue: string, tenant: string): Promise<JobCounts>;
  /** One job of a partition, or null when unknown (or trimmed after finishing). */
  getJob(queue: string, tenant: string, id: string): Promise<JobInfo | null>;
  /** Progress of the jobs enqueued with this `batchId`. */
  batchProgress(batchId: string): Promise<BatchProgress>;
  /**
   * Removes every job of `queue` (of one tenant's partition when `tenant` is given),
   * whatever its state, with the partition's fleet-wide concurrency cap, and takes the
   * tenants out of the ready index; resolves to the tenants whose partitions it found,
   * sorted. Meant for a tenant that was removed or a queue no longer fed: a job enqueued
   * meanwhile may go too, and a worker still running one of the jobs finds its lock lost.
   */
  purge(queue: string, tenant?: string): Promise<string[]>;

  /**
   * `enqueueBulk`, also saying how many jobs were new: a job whose id its partition
   * already holds is not added again, and not counted.
   */
  enqueueCounted<Data>(queue: string, jobs: readonly EnqueueJob<Data>[]): Promise<EnqueueOutcome>;

  /** Closes the engine's connections; idempotent. */
  close(): Promise<void>;
}
