/**
 * One (queue, tenant) partition of the in-memory engine: its jobs, the waiting heap
 * ordered by (priority, enqueue order), the active set and the finished counters.
 */
import type { JobInfo, JobState } from '../engine.js';
import { MAX_PRIORITY, type NormalisedJob } from '../job-input.js';
import { MinHeap } from './min-heap.js';

/** Everything the memory engine knows about one job. */
export interface JobRecord {
  id: string;
  job: NormalisedJob;
  queue: string;
  state: JobState;
  /** Enqueue order, engine-wide; breaks ties between equal priorities (FIFO). */
  seq: number;
  enqueuedAt: number;
  dueAt: number;
  finishedAt: number | null;
  attemptsMade: number;
  stalledCount: number;
  lock: { token: string; until: number } | null;
  result: string | null;
  error: { message: string; stack: string | null } | null;
}

/** A freshly enqueued job's record: waiting (or delayed, by its `dueAt`), never tried. */
export function newJobRecord(
  id: string,
  job: NormalisedJob,
  queue: string,
  seq: number,
  now: number,
): JobRecord {
  return {
    id,
    job,
    queue,
    state: 'waiting',
    seq,
    enqueuedAt: now,
    dueAt: now + job.delayMs,
    finishedAt: null,
    attemptsMade: 0,
    stalledCount: 0,
    lock: null,
    result: null,
    error: null,
  };
}

// Unprioritised jobs sort after every prioritised one, FIFO among themselves.
const byPriorityThenOrder = (a: JobRecord, b: JobRecord): boolean => {
  const pa = a.job.priority ?? MAX_PRIORITY + 1;
  const pb = b.job.priority ?? MAX_PRIORITY + 1;
  return pa < pb || (pa === pb && a.seq < b.seq);
};

/** The jobs of one tenant in one logical queue. */
export class MemoryPartition {
  readonly jobs = new Map<string, JobRecord>();
  readonly waiting = new MinHeap<JobRecord>(byPriorityThenOrder);
  readonly active = new Map<string, JobRecord>();
  delayed = 0;
  completed = 0;
  failed = 0;
  /** Fleet-wide cap on active jobs; null = none. */
  cap: number | null = null;
  /** Ids of finished jobs whose bodies are still kept, oldest first. */
  readonly #kept = { completed: [] as string[], failed: [] as string[] };

  /** True while the cap leaves no room for another active job. */
  get atCap(): boolean {
    return this.cap !== null && this.active.size >= this.cap;
  }

  /** Moves an active job to a finished state; keeps at most `keep` finished bodies. */
  finish(record: JobRecord, state: 'completed' | 'failed', keep: number): void {
    this.active.delete(record.id);
    record.state = state;
    record.lock = null;
    record.finishedAt = Date.now();
    this[state] += 1;
    const kept = this.#kept[state];
    kept.push(record.id);
    while (kept.length > keep) this.jobs.delete(kept.shift()!);
  }
}

/** The read-only view of `record`, a job of `tenant`'s partition. */
export function jobInfo(record: JobRecord, tenant: string): JobInfo {
  return {
    id: record.id,
    queue: record.queue,
    tenant,
    name: record.job.name,
    data: JSON.parse(record.job.json),
    state: record.state,
    attemptsMade: record.attemptsMade,
    maxAttempts: record.job.attempts,
    priority: record.job.priority,
    enqueuedAt: record.enqueuedAt,
    finishedAt: record.finishedAt,
    batchId: record.job.batchId,
    result: record.result === null ? null : JSON.parse(record.result),
    error: record.error && { ...record.error },
  };
}
