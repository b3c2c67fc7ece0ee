/**
 * A bull-board queue adapter over one partition of the in-memory engine, so the demo's
 * queues show at `/queues` as the BullMQ partitions do. It subclasses bull-board's
 * `BaseAdapter` (9.10: pinned in package.json, since a new abstract method would break
 * it) and is read-only: the memory engine has no API to retry, promote, remove, clean
 * or add from outside a worker, so the adapter sets `readOnlyMode` (bull-board then
 * hides those buttons and answers 405) and every write throws an {@link UnsupportedError}
 * saying so. Counts and jobs are read straight from the engine's partition.
 */
import type { JobCounts, JobState, JobStatus, QueueJob, QueueJobJson } from '@bull-board/api/dist/types.js';
import type { MemoryEngine } from '../../src/queue/memory/memory-engine.js';
import type { JobRecord, MemoryPartition } from '../../src/queue/memory/partition.js';
import { UnsupportedError } from '../../src/reporting/errors.js';
import { EnginePartitionAdapter, STATUSES } from './engine-partition-adapter.js';

type MemoryStatus = (typeof STATUSES)[number];

function readOnly(action: string): never {
  throw new UnsupportedError(
    `Expected a BullMQ partition to ${action} from bull-board, got one of the in-memory engine, which bull-board shows read-only`,
  );
}

/** Newest first for finished and active jobs; the order they will run in for waiting and delayed. */
function order(status: MemoryStatus): (a: JobRecord, b: JobRecord) => number {
  if (status === 'waiting')
    return (a, b) =>
      (a.job.priority ?? Number.MAX_SAFE_INTEGER) - (b.job.priority ?? Number.MAX_SAFE_INTEGER) ||
      a.seq - b.seq;
  if (status === 'delayed') return (a, b) => a.dueAt - b.dueAt || a.seq - b.seq;
  return (a, b) => (b.finishedAt ?? b.enqueuedAt) - (a.finishedAt ?? a.enqueuedAt) || b.seq - a.seq;
}

/** A job as bull-board reads it. */
function queueJob(record: JobRecord): QueueJob {
  return {
    opts: record.state === 'delayed' ? { delay: Math.max(0, record.dueAt - record.enqueuedAt) } : {},
    promote: async () => readOnly('promote a job'),
    remove: async () => readOnly('remove a job'),
    retry: async () => readOnly('retry a job'),
    getState: async () => record.state as JobState,
    toJSON: (): QueueJobJson => ({
      id: record.id,
      name: record.job.name,
      progress: 0,
      attemptsMade: record.attemptsMade,
      finishedOn: record.finishedAt,
      processedOn: null,
      timestamp: record.enqueuedAt,
      failedReason: record.error?.message ?? '',
      stacktrace: record.error?.stack ? [record.error.stack] : [],
      data: JSON.parse(record.job.json),
      returnvalue: record.result === null ? null : JSON.parse(record.result),
      opts: {
        attempts: record.job.attempts,
        ...(record.job.priority !== null ? { priority: record.job.priority } : {}),
        ...(record.job.batchId ? { batchId: record.job.batchId } : {}),
      },
      ...(record.job.priority !== null ? { priority: record.job.priority } : {}),
    }),
  };
}

/** One (queue, tenant) partition of a {@link MemoryEngine}, read-only. */
export class MemoryPartitionAdapter extends EnginePartitionAdapter {
  readonly #engine: MemoryEngine;

  constructor(engine: MemoryEngine, queue: string, tenant: string) {
    super(queue, tenant, true);
    this.#engine = engine;
  }

  protected refuse(action: string): never {
    return readOnly(action);
  }

  /** The partition now (a purge may have dropped it: then nothing). */
  #partition(): MemoryPartition | undefined {
    return this.#engine.partitions().get(this.queue)?.get(this.tenant);
  }

  async getJobCounts(): Promise<JobCounts> {
    const p = this.#partition();
    return {
      active: p?.active.size ?? 0,
      waiting: p?.waiting.size ?? 0,
      delayed: p?.delayed ?? 0,
      completed: p?.completed ?? 0,
      failed: p?.failed ?? 0,
    };
  }

  async getJobs(statuses: JobStatus[], start = 0, end = -1): Promise<QueueJob[]> {
    const jobs = [...(this.#partition()?.jobs.values() ?? [])];
    return statuses.flatMap((status) => {
      if (!(STATUSES as readonly string[]).includes(status)) return [];
      const matching = jobs.filter((r) => r.state === status).sort(order(status as MemoryStatus));
      return matching.slice(start, end < 0 ? undefined : end + 1).map(queueJob);
    });
  }

  async getJob(id: string): Promise<QueueJob | undefined> {
    const record = this.#partition()?.jobs.get(id);
    return record ? queueJob(record) : undefined;
  }

  async getGlobalConcurrency(): Promise<number | null> {
    return this.#partition()?.cap ?? null;
  }

  async clean(): Promise<void> {
    readOnly('clean jobs');
  }

  async promoteAll(): Promise<void> {
    readOnly('promote jobs');
  }
}
