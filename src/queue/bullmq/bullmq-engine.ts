/**
 * The Redis engine, on BullMQ: one BullMQ queue per (queue, tenant) partition, a ready
 * index of tenants in Redis, and a bounded number of Redis connections per process:
 *
 * - one command connection shared by every partition's BullMQ objects (the caller's
 *   ioredis instance when one is passed in, else one the engine opens), and
 * - one subscriber connection, opened by the first `waitForReady`.
 *
 * So one engine holds at most 2 connections of its own, whatever the number of tenants.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { type Job, type RedisQueueBackend, raw2NextJobData } from 'bullmq';
import { Redis } from 'ioredis';
import { ClosedError, redactUrl } from '../../errors.js';
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
import {
  checkConcurrency,
  checkJobId,
  checkLockDuration,
  checkQueueName,
  checkTenant,
  normaliseJobs,
  serialiseResult,
} from '../job-input.js';
import { readBatchProgress } from './batches.js';
import { enqueueJobs } from './enqueue.js';
import { completeAndTake, completeJob, type FinishContext, failJob } from './finish.js';
import {
  attemptsOf,
  type BullMqLease,
  batchOf,
  isLostLock,
  readCounts,
  readJobInfo,
  toActiveJob,
} from './jobs.js';
import { extendLocks, recoverStalled } from './locks.js';
import { MarkerSweep } from './marker-sweep.js';
import {
  type BullMqEngineOptions,
  type ResolvedBullMqEngineOptions,
  resolveBullMqEngineOptions,
} from './options.js';
import { PartitionCache, type WorkerPartition } from './partitions.js';
import { purgePartitions, purgeTenant } from './purge.js';
import { ACTIVE_GRACE_MS, ReadyIndex } from './ready-index.js';
import { type FleetCommands, withFleetCommands } from './scripts.js';

export type { BullMqEngineOptions, ResolvedBullMqEngineOptions } from './options.js';

/** Events of {@link BullMqEngine}. */
export interface BullMqEngineEventMap {
  /** A Redis or BullMQ error outside any call (e.g. a dropped connection); the engine carries on. */
  'redis:error': [{ error: Error }];
}

/** A {@link QueueEngine} on Redis through BullMQ. */
export class BullMqEngine extends EventEmitter<BullMqEngineEventMap> implements QueueEngine {
  readonly name = 'bullmq' as const;
  readonly options: ResolvedBullMqEngineOptions;

  readonly #redis: Redis & FleetCommands;
  readonly #ownsConnection: boolean;
  readonly #partitions: PartitionCache;
  readonly #index: ReadyIndex;
  readonly #sweep: MarkerSweep; // each readyTenants may sweep for jobs put in by BullMQ's own API
  #closePromise: Promise<void> | null = null;

  constructor(options: BullMqEngineOptions) {
    super();
    this.options = resolveBullMqEngineOptions(options);
    const { connection, clientName } = this.options;
    this.#ownsConnection = typeof connection === 'string';
    const redis =
      typeof connection === 'string'
        ? // maxRetriesPerRequest null: during an outage or CLIENT PAUSE, commands wait instead of failing.
          new Redis(connection, { connectionName: clientName, maxRetriesPerRequest: null })
        : connection;
    const onError = (error: Error): void => {
      error.message = redactUrl(error.message);
      this.emit('redis:error', { error });
    };
    if (this.#ownsConnection) redis.on('error', onError);
    this.#redis = withFleetCommands(redis);
    this.#partitions = new PartitionCache(redis, this.options, onError);
    this.#index = new ReadyIndex(this.#redis, this.options.prefix, this.options.keepCompleted, () => {
      const subscriber = redis.duplicate({ connectionName: `${clientName}:sub`, maxRetriesPerRequest: null });
      subscriber.on('error', onError);
      return subscriber;
    });
    this.#sweep = new MarkerSweep(redis, this.options.prefix, this.#index, this.#partitions, onError);
  }

  /** BullMQ Worker objects cached right now (bounded by `maxCachedPartitions` plus those in use). */
  get cachedPartitions(): number {
    return this.#partitions.cachedWorkers;
  }

  async enqueue<Data>(queue: string, job: EnqueueJob<Data>): Promise<string> {
    const [id] = await this.enqueueBulk(queue, [job]);
    return id!;
  }

  async enqueueBulk<Data>(queue: string, jobs: readonly EnqueueJob<Data>[]): Promise<string[]> {
    return (await this.enqueueCounted(queue, jobs)).ids;
  }

  /**
   * Adds the jobs in MULTIs of up to 500, each with its jobs' ready-index entries, batch
   * counts and wake-up, so a reader never sees a job without its tenant listed.
   */
  async enqueueCounted<Data>(queue: string, jobs: readonly EnqueueJob<Data>[]): Promise<EnqueueOutcome> {
    this.#checkOpen();
    const normalised = normaliseJobs(queue, jobs, this.options.maxDataBytes);
    return enqueueJobs(this.#partitions, this.#index, this.options, queue, normalised);
  }

  async readyTenants(queue: string): Promise<string[]> {
    this.#checkOpen();
    return this.#index.readyTenants(this.#sweep.maybeStep(checkQueueName(queue)));
  }

  async waitForReady(queue: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    this.#checkOpen();
    return this.#index.waitForReady(checkQueueName(queue), timeoutMs, signal);
  }

  async fetch(
    queue: string,
    tenant: string,
    workerId: string,
    lockDurationMs: number,
  ): Promise<ActiveJob | null> {
    this.#checkOpen();
    checkQueueName(queue);
    checkTenant(tenant);
    checkLockDuration(lockDurationMs);
    return this.#partitions.use(queue, tenant, async (partition) => {
      const { worker } = partition;
      // Read by BullMQ's moveToActive when it takes the lock.
      worker.opts.lockDuration = lockDurationMs;
      this.#markActive(partition, queue, tenant);
      for (;;) {
        const token = `${workerId}:${randomUUID()}`;
        const job = await this.#taken(
          partition,
          queue,
          tenant,
          token,
          await worker.getNextJob(token, { block: false }),
        );
        if (job !== 'retry') return job;
      }
    });
  }

  /** A partition Worker's answer to a fetch as an ActiveJob (null when none; 'retry' after a deferred failure). */
  async #taken(
    partition: WorkerPartition,
    queue: string,
    tenant: string,
    token: string,
    job: Job | undefined,
  ): Promise<ActiveJob | null | 'retry'> {
    if (!job) {
      await this.#index.settle(queue, tenant, this.#partitions.keys(queue, tenant));
      return null;
    }
    if (job.deferredFailure) {
      // BullMQ's stalled sweep marks a job that stalled too often to fail on its next fetch.
      const context = this.#contextOf(partition.worker.getBackend() as RedisQueueBackend);
      await failJob(context, job, token, new Error(job.deferredFailure));
      return 'retry';
    }
    this.#partitions.hold(partition);
    return toActiveJob(queue, tenant, job, token);
  }

  /**
   * Announces the partition to the stalled sweeps before a moveToActive goes out on the
   * same connection (so Redis sees it first). A sweep forgets a partition only when
   * nothing in it is active and its announcement is older than the grace period, so an
   * announcement younger than half of it covers every fetch until it is renewed.
   */
  #markActive(partition: WorkerPartition, queue: string, tenant: string): void {
    const now = Date.now();
    if (now - partition.markedAt <= ACTIVE_GRACE_MS / 2) return;
    partition.markedAt = now;
    this.#index.markActive(queue, tenant).catch((error: Error) => this.emit('redis:error', { error }));
  }

  /**
   * With `fetchNext`, one script call completes the job and takes the next one, as a
   * plain BullMQ Worker does: of the same partition (BullMQ's moveToFinished, locked with
   * the finished job's token), or of `fetchNext.tenant`'s (scripts.ts FINISH_AND_TAKE,
   * with a token of its own). A job counted in a batch completes in its own MULTI first.
   */
  async complete(job: ActiveJob, result: unknown, options: CompleteOptions = {}): Promise<ActiveJob | null> {
    this.#checkOpen();
    const next = options.fetchNext;
    if (next !== undefined) checkLockDuration(next.lockDurationMs);
    const tenant = next?.tenant === undefined ? job.tenant : checkTenant(next.tenant);
    const json = serialiseResult(result);
    const { token, job: bullJob } = job.lease as BullMqLease;
    const elsewhere = tenant !== job.tenant;
    if (next === undefined || (elsewhere && batchOf(bullJob) !== null)) {
      try {
        // 'lost': the job is (or will be) run again by whoever holds it now; nothing to do.
        await completeJob(this.#finishContext(job), bullJob, token, json);
      } finally {
        this.#release(job);
      }
      return next === undefined ? null : this.fetch(job.queue, tenant, next.workerId, next.lockDurationMs);
    }
    const { queue } = job;
    const nextToken = elsewhere ? `${next.workerId}:${randomUUID()}` : token;
    return this.#partitions.use(queue, tenant, async (partition) => {
      let finished: Awaited<ReturnType<typeof completeJob>>;
      try {
        // Read by moveToFinished when it locks the next job.
        partition.worker.opts.lockDuration = next.lockDurationMs;
        this.#markActive(partition, queue, tenant);
        const context = this.#finishContext(job);
        finished = elsewhere
          ? await completeAndTake(context, bullJob, token, json, {
              backend: partition.worker.getBackend() as RedisQueueBackend,
              token: nextToken,
              lockDurationMs: next.lockDurationMs,
            })
          : await completeJob(context, bullJob, token, json, true);
      } finally {
        this.#release(job);
      }
      // Refused (lock lost): nothing was taken either, so take the next job the usual way.
      if (finished.outcome === 'lost') return this.fetch(queue, tenant, next.workerId, next.lockDurationMs);
      const [data, id] = raw2NextJobData(finished.next as unknown[]);
      // BullMQ's own decoding of a fetched job (Worker.getNextJob ends the same way).
      const worker = partition.worker as unknown as {
        nextJobFromJobData(d: unknown, i: unknown, t: string): Promise<Job | undefined>;
      };
      const taken = await this.#taken(
        partition,
        queue,
        tenant,
        nextToken,
        data ? await worker.nextJobFromJobData(data, id, nextToken) : undefined,
      );
      return taken === 'retry' ? this.fetch(queue, tenant, next.workerId, next.lockDurationMs) : taken;
    });
  }

  async fail(job: ActiveJob, error: Error, options: { unrecoverable?: boolean } = {}): Promise<FailOutcome> {
    this.#checkOpen();
    const { token, job: bullJob } = job.lease as BullMqLease;
    const cause = error instanceof Error ? error : new Error(String(error));
    const final =
      options.unrecoverable === true ||
      cause.name === 'UnrecoverableError' ||
      bullJob.attemptsMade + 1 >= attemptsOf(bullJob);
    try {
      if (final) {
        const outcome = await failJob(this.#finishContext(job), bullJob, token, cause);
        return outcome === 'lost' ? 'retrying' : 'failed';
      }
      // BullMQ's own retry: back off into delayed (or straight back to waiting).
      await bullJob.moveToFailed(cause, token, false);
    } catch (failure) {
      if (isLostLock(failure)) return 'retrying';
      throw failure;
    } finally {
      this.#release(job);
    }
    await this.#index.announce(job.queue, job.tenant);
    return 'retrying';
  }

  async extendLocks(jobs: readonly ActiveJob[], lockDurationMs: number): Promise<string[]> {
    this.#checkOpen();
    checkLockDuration(lockDurationMs);
    return extendLocks(this.#partitions, jobs, lockDurationMs);
  }

  async recoverStalled(queue: string): Promise<number> {
    this.#checkOpen();
    return recoverStalled(this.#partitions, this.#index, checkQueueName(queue));
  }

  /** BullMQ's own per-queue global concurrency of the tenant's partition. */
  async setTenantConcurrency(queue: string, tenant: string, max: number | null): Promise<void> {
    this.#checkOpen();
    const cap = checkConcurrency(max);
    const backend = this.#partitions.backend(checkQueueName(queue), checkTenant(tenant));
    if (cap === null) {
      // Lifting a cap that was not there frees no place: no one needs waking (a worker
      // lifts on first sight of every uncapped tenant, so this saves a PUBLISH per tenant).
      if ((await backend.removeQueueMetaFields(['concurrency'])) === 0) return;
    } else {
      await backend.setQueueMeta({ concurrency: cap });
    }
    await this.#index.publish(queue);
  }

  /** Waiting, active and delayed as BullMQ holds them now; completed and failed exact (jobs.ts readCounts). */
  async counts(queue: string, tenant: string): Promise<JobCounts> {
    this.#checkOpen();
    return readCounts(this.#redis, this.#partitions.backend(checkQueueName(queue), checkTenant(tenant)));
  }

  async getJob(queue: string, tenant: string, id: string): Promise<JobInfo | null> {
    this.#checkOpen();
    const backend = this.#partitions.backend(checkQueueName(queue), checkTenant(tenant));
    return readJobInfo(backend, queue, tenant, checkJobId(id));
  }

  async batchProgress(batchId: string): Promise<BatchProgress> {
    this.#checkOpen();
    return readBatchProgress(this.#redis, this.#index.batchKey(batchId));
  }

  async purge(queue: string, tenant?: string): Promise<string[]> {
    this.#checkOpen();
    const slug = tenant === undefined ? null : checkTenant(tenant);
    return purgePartitions(this.#redis, this.#index, this.options.prefix, checkQueueName(queue), slug);
  }

  /** Purges `tenant`'s partitions of every queue it has jobs in; resolves to those queues, sorted. */
  purgeTenant(tenant: string): Promise<string[]> {
    this.#checkOpen();
    return purgeTenant(this.#redis, this.#index, this.options.prefix, checkTenant(tenant));
  }

  /** Closes the Workers, the subscriber and (if the engine opened it) the connection; idempotent. */
  close(): Promise<void> {
    this.#closePromise ??= this.#close();
    return this.#closePromise;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    const quit = async () => void (this.#ownsConnection && (await this.#redis.quit()));
    const steps = [() => this.#partitions.close(), () => this.#index.close(), quit];
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.options.closeTimeoutMs);
    });
    const work = (async () => {
      for (const step of steps) {
        try {
          await step();
        } catch (error) {
          this.emit('redis:error', { error: error as Error });
        }
      }
    })();
    const outcome = await Promise.race([work, deadline]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      this.#index.disconnect();
      if (this.#ownsConnection) this.#redis.disconnect();
    }
  }

  #checkOpen(): void {
    if (this.#closePromise) throw new ClosedError('BullMqEngine');
  }

  #release(job: ActiveJob): void {
    const partition = this.#partitions.cached(job.queue, job.tenant);
    if (partition) this.#partitions.release(partition);
  }

  /** The job's partition Worker backend (cached while the job is held). */
  #finishContext(job: ActiveJob): FinishContext {
    const partition = this.#partitions.cached(job.queue, job.tenant);
    if (!partition) throw new Error(`no cached partition for held job ${job.queue}.${job.tenant}/${job.id}`);
    return this.#contextOf(partition.worker.getBackend() as RedisQueueBackend);
  }

  #contextOf(backend: RedisQueueBackend): FinishContext {
    return {
      backend,
      batchKey: (id) => this.#index.batchKey(id),
      batchTtlMs: this.options.batchTtlMs,
      keep: { completed: this.options.keepCompleted, failed: this.options.keepFailed },
    };
  }
}
