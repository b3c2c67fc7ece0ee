/**
 * A bull-board queue adapter over one partition of the pg-boss engine, so its queues
 * show at `/queues` as the BullMQ partitions do, with bull-board's actions: retry a
 * failed job (or all of them), promote a delayed one (or all), remove a job, clean
 * finished ones. It reads and writes through the engine's {@link PgBossBoard} (one
 * small pool per dashboard); counts come from the engine. Jobs are listed by the row's
 * uuid (unique in the partition whatever the caller's `jobId`). What pg-boss has no
 * place for (pause, adding jobs from the board, schedulers) is refused with an
 * {@link UnsupportedError}; `readOnly` hides and refuses every action.
 */
import type {
  JobCleanStatus,
  JobCounts,
  JobState,
  JobStatus,
  QueueJob,
  QueueJobJson,
} from '@bull-board/api/dist/types.js';
import type { BoardJob, BoardState, PgBossBoard } from '../../src/queue/pgboss/board.js';
import type { PgBossEngine } from '../../src/queue/pgboss/pgboss-engine.js';
import { UnsupportedError } from '../../src/reporting/errors.js';
import { EnginePartitionAdapter, STATUSES } from './engine-partition-adapter.js';

function unsupported(action: string): never {
  throw new UnsupportedError(
    `Expected an action the pg-boss engine's board supports (retry, promote, remove, clean), got ${action}`,
  );
}

/** One (queue, tenant) partition of a {@link PgBossEngine}. */
export class PgBossPartitionAdapter extends EnginePartitionAdapter {
  readonly #engine: PgBossEngine;
  readonly #board: PgBossBoard;

  constructor(engine: PgBossEngine, board: PgBossBoard, queue: string, tenant: string, readOnly: boolean) {
    super(queue, tenant, readOnly);
    this.#engine = engine;
    this.#board = board;
  }

  protected refuse(action: string): never {
    return unsupported(action);
  }

  #queueJob(job: BoardJob): QueueJob {
    const { queue, tenant } = this;
    return {
      opts: job.state === 'delayed' ? { delay: Math.max(0, job.dueAt - job.enqueuedAt) } : {},
      promote: async () => void (await this.#board.promote(queue, tenant, job.uuid)),
      remove: async () => void (await this.#board.remove(queue, tenant, job.uuid)),
      retry: async () => void (await this.#board.retry(queue, tenant, job.uuid)),
      getState: async () => job.state as JobState,
      toJSON: (): QueueJobJson => ({
        id: job.uuid,
        name: job.name,
        progress: 0,
        attemptsMade: job.attemptsMade,
        finishedOn: job.finishedAt,
        processedOn: null,
        timestamp: job.enqueuedAt,
        failedReason: job.error?.message ?? '',
        stacktrace: job.error?.stack ? [job.error.stack] : [],
        data: job.data,
        returnvalue: job.result,
        opts: {
          attempts: job.maxAttempts,
          jobId: job.id,
          ...(job.priority !== null ? { priority: job.priority } : {}),
          ...(job.batchId ? { batchId: job.batchId } : {}),
        },
        ...(job.priority !== null ? { priority: job.priority } : {}),
      }),
    };
  }

  async getJobCounts(): Promise<JobCounts> {
    return { ...(await this.#engine.counts(this.queue, this.tenant)) };
  }

  async getJobs(statuses: JobStatus[], start = 0, end = -1): Promise<QueueJob[]> {
    const pages = await Promise.all(
      statuses
        .filter((status) => (STATUSES as readonly string[]).includes(status))
        .map((status) => this.#board.jobs(this.queue, this.tenant, status as BoardState, start, end)),
    );
    return pages.flat().map((job) => this.#queueJob(job));
  }

  async getJob(id: string): Promise<QueueJob | undefined> {
    if (!/^[0-9a-f-]{36}$/.test(id)) return undefined;
    const job = await this.#board.job(this.queue, this.tenant, id);
    return job ? this.#queueJob(job) : undefined;
  }

  async getGlobalConcurrency(): Promise<number | null> {
    return null;
  }

  async clean(status: JobCleanStatus, graceTimeMs: number): Promise<void> {
    if (status !== 'completed' && status !== 'failed') unsupported(`clean ${status}`);
    await this.#board.clean(this.queue, this.tenant, status, graceTimeMs);
  }

  override async empty(): Promise<void> {
    unsupported('empty (use `tenant-fleet purge`)');
  }

  override async obliterate(): Promise<void> {
    unsupported('obliterate (use `tenant-fleet purge`)');
  }

  async promoteAll(): Promise<void> {
    for (const job of await this.#board.jobs(this.queue, this.tenant, 'delayed', 0, -1))
      await this.#board.promote(this.queue, this.tenant, job.uuid);
  }
}
