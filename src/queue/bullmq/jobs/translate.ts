/**
 * Translation between the engine-neutral job types and BullMQ's jobs: the options a
 * partition job is stored with, the lease an `ActiveJob` carries, and the read-only
 * `JobInfo` view.
 */
import { Job, type JobsOptions, type RedisQueueBackend } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ActiveJob, JobCounts, JobInfo, JobState } from '../../engine.js';
import { MAX_PRIORITY, type NormalisedJob } from '../../job-input.js';
import type { Partition } from '../partition/partitions.js';

/** What an `ActiveJob` of this engine carries in `lease`. */
export interface BullMqLease {
  readonly token: string;
  readonly job: Job;
  /** The job's partition handle, kept with the job (the cache may drop it meanwhile). */
  readonly partition: Partition;
}

/**
 * The priority this engine gave jobs enqueued without one before 2026-12-01 (every job
 * was stored prioritised then); such jobs, still waiting from then, read back as
 * unprioritised.
 */
export const UNPRIORITISED = MAX_PRIORITY + 1;

/**
 * The stored BullMQ job of a normalised job, ready for `addJobToTransaction`. Its `opts`
 * hold only what differs from BullMQ's defaults (retention is given when the job
 * finishes, see finish.ts), so that a plain job's `opts` stays under Redis's
 * `hash-max-listpack-value` (64 bytes) and its hash keeps the compact listpack encoding:
 * about a third of the memory of a hashtable-encoded one.
 */
export function toBullJobJson(
  job: NormalisedJob,
  timestamp: number,
): { name: string; data: string; timestamp: number; opts: JobsOptions } {
  // A job without a priority goes to BullMQ's `wait` list (FIFO); the fleet's fetch
  // (job-moves.ts) takes prioritised jobs first, as the contract says.
  const opts: JobsOptions & { fleetBatch?: string } = {};
  if (job.priority !== null) opts.priority = job.priority;
  if (job.attempts > 1) {
    opts.attempts = job.attempts;
    opts.backoff = { type: job.backoff.type, delay: job.backoff.delayMs };
  }
  if (job.delayMs > 0) opts.delay = job.delayMs;
  if (job.jobId !== null) opts.jobId = job.jobId;
  // Unknown option keys are stored as they are, so the batch id travels with the job.
  if (job.batchId !== null) opts.fleetBatch = job.batchId;
  return { name: job.name, data: job.json, timestamp, opts };
}

/** Attempts in all: stored only when more than one (BullMQ reads a missing value as 0). */
export function attemptsOf(job: Job): number {
  return Math.max(1, job.opts.attempts ?? 1);
}

/** The batch id a BullMQ job was enqueued with, if any. */
export function batchOf(job: Job): string | null {
  return (job.opts as { fleetBatch?: string }).fleetBatch ?? null;
}

/**
 * BullMQ's `Job` of a fetched job, whose `backend` (its partition's) is looked up when a
 * method of the job first needs it, not built with every job taken (partitions.ts
 * {@link Partition}). BullMQ's constructor sets it through `createBackend`.
 */
class PartitionJob extends Job {
  protected override createBackend(): void {}
}
Object.defineProperty(PartitionJob.prototype, 'backend', {
  get(this: { queue: { backend: unknown } }) {
    return this.queue.backend;
  },
});

/** BullMQ's job of a fetched job's raw data (as moveToActive returns it), locked with `token`. */
export function fetchedJob(
  partition: Partition,
  data: Record<string, unknown>,
  id: string,
  token: string,
): Job {
  const job = PartitionJob.fromJSON(partition as never, data as never, id);
  job.token = token;
  return job;
}

/** The `ActiveJob` handed to a worker for a fetched BullMQ job. */
export function toActiveJob(
  queue: string,
  tenant: string,
  partition: Partition,
  job: Job,
  token: string,
  lastReady: boolean,
): ActiveJob {
  const lease: BullMqLease = { token, job, partition };
  return {
    id: job.id!,
    queue,
    tenant,
    name: job.name,
    data: job.data,
    attempt: job.attemptsMade + 1,
    maxAttempts: attemptsOf(job),
    enqueuedAt: job.timestamp,
    batchId: batchOf(job),
    lastReady,
    lease,
  };
}

/** True when BullMQ refused a settle because this worker no longer holds the job. */
export function isLostLock(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  // JobNotExist, JobLockNotExist, JobNotInState, JobLockMismatch (bullmq's ErrorCode).
  return code === -1 || code === -2 || code === -3 || code === -6;
}

const STATES: Record<string, JobState> = {
  waiting: 'waiting',
  wait: 'waiting',
  prioritized: 'waiting',
  paused: 'waiting',
  delayed: 'delayed',
  active: 'active',
  completed: 'completed',
  failed: 'failed',
};

/** The read-only view of one job of a partition, or null when it is unknown (or trimmed). */
export async function readJobInfo(
  partition: Partition,
  queue: string,
  tenant: string,
  id: string,
): Promise<JobInfo | null> {
  const { backend } = partition;
  const [json, state] = await Promise.all([backend.getJobData(id), backend.getState(id)]);
  if (!json) return null;
  return toJobInfo(queue, tenant, Job.fromJSON(partition as never, json, id), state);
}

/** The read-only view of a stored BullMQ job. */
function toJobInfo(queue: string, tenant: string, job: Job, bullState: string): JobInfo {
  const stack = Array.isArray(job.stacktrace) ? job.stacktrace.at(-1) : undefined;
  const priority = job.opts.priority;
  return {
    id: job.id!,
    queue,
    tenant,
    name: job.name,
    data: job.data,
    state: STATES[bullState] ?? (job.finishedOn ? (job.failedReason ? 'failed' : 'completed') : 'waiting'),
    attemptsMade: job.attemptsMade,
    maxAttempts: attemptsOf(job),
    priority: !priority || priority >= UNPRIORITISED ? null : priority,
    enqueuedAt: job.timestamp,
    finishedAt: job.finishedOn ?? null,
    batchId: batchOf(job),
    result: job.returnvalue ?? null,
    error: job.failedReason ? { message: job.failedReason, stack: stack ?? null } : null,
  };
}

/**
 * Waiting, active and delayed as BullMQ holds them now; completed and failed are the
 * exact totals BullMQ's metrics count as it finishes each job (finished job bodies
 * themselves are trimmed, see docs/engines.md § Redis memory).
 */
export async function readCounts(redis: Redis, backend: RedisQueueBackend): Promise<JobCounts> {
  const [current, completed, failed] = await Promise.all([
    backend.getCounts(['wait', 'prioritized', 'active', 'delayed']),
    redis.hget(backend.toKey('metrics:completed'), 'count'),
    redis.hget(backend.toKey('metrics:failed'), 'count'),
  ]);
  const [wait, prioritized, active, delayed] = current.map((n) => Number(n) || 0);
  return {
    waiting: wait! + prioritized!,
    active: active!,
    delayed: delayed!,
    completed: Number(completed ?? 0),
    failed: Number(failed ?? 0),
  };
}
