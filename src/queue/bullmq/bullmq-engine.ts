/**
 * The Redis engine, on BullMQ: one BullMQ queue per (queue, tenant) partition, a ready
 * index of tenants in Redis, and a bounded number of Redis connections per process: one
 * command connection shared by every partition's BullMQ objects (the caller's ioredis
 * instance when one is passed in, else one the engine opens; one per master on a Redis
 * Cluster), and one subscriber connection, opened by the first `waitForReady`. So an
 * engine holds at most 2 connections of its own (masters + 1), whatever the tenants.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { raw2NextJobData } from 'bullmq';
import type { Redis } from 'ioredis';
import { ClosedError, redactUrl } from '../../reporting/errors.js';
import { runCloseSteps } from '../close-steps.js';
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
  checkCaps,
  checkJobId,
  checkLockDuration,
  checkQueueName,
  checkTenant,
  normaliseJobs,
  serialiseResult,
} from '../job-input.js';
import { duplicateConnection, openConnection } from './cluster/connection.js';
import { KeyLayout } from './cluster/key-layout.js';
import { readBatchProgress } from './jobs/batches.js';
import { enqueueJobs } from './jobs/enqueue.js';
import {
  completeAndNext,
  completeAndTake,
  completeJob,
  type FinishSettings,
  failJob,
  failOrRetry,
} from './jobs/finish.js';
import { extendLocks, recoverStalled } from './jobs/locks.js';
import {
  type BullMqLease,
  batchOf,
  fetchedJob,
  readCounts,
  readJobInfo,
  toActiveJob,
} from './jobs/translate.js';
import { MarkerSweep } from './marker-sweep.js';
import {
  type BullMqEngineOptions,
  type ResolvedBullMqEngineOptions,
  resolveBullMqEngineOptions,
} from './options.js';
import { CapWriter } from './partition/caps.js';
import { type Partition, PartitionCache } from './partition/partitions.js';
import { purgePartitions, purgeTenant } from './purge.js';
import { ACTIVE_GRACE_MS, ReadyIndex, type TakeCall, type TakeLock } from './ready-index.js';
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
  readonly #layout: KeyLayout;
  readonly #partitions: PartitionCache;
  readonly #index: ReadyIndex;
  readonly #sweep: MarkerSweep; // each readyTenants may sweep for jobs put in by BullMQ's own API
  readonly #caps: CapWriter;
  /** What every job's completion or failure needs of the engine (jobs/finish.ts). */
  readonly #finish: FinishSettings;
  #closePromise: Promise<void> | null = null;

  constructor(options: BullMqEngineOptions) {
    super();
    this.options = resolveBullMqEngineOptions(options);
    const { connection, clientName } = this.options;
    const { redis, owns } = openConnection(connection, clientName);
    this.#ownsConnection = owns;
    this.#layout = new KeyLayout(this.options.prefix, this.options.shards);
    const onError = (error: Error): void => {
      error.message = redactUrl(error.message);
      this.emit('redis:error', { error });
    };
    if (this.#ownsConnection) redis.on('error', onError);
    this.#redis = withFleetCommands(redis);
    this.#partitions = new PartitionCache(redis, this.options, this.#layout, onError);
    this.#index = new ReadyIndex(this.#redis, this.#layout, this.options.keepCompleted, () => {
      const subscriber = duplicateConnection(redis, `${clientName}:sub`);
      subscriber.on('error', onError);
      return subscriber;
    });
    this.#sweep = new MarkerSweep(redis, this.#layout, this.#index, this.#partitions, onError);
    this.#caps = new CapWriter(this.#redis, this.#layout, (queue) => this.#index.publish(queue));
    const { batchTtlMs, keepCompleted, keepFailed } = this.options;
    this.#finish = {
      redis,
      layout: this.#layout,
      batchTtlMs,
      keep: { completed: keepCompleted, failed: keepFailed },
    };
  }

  /** BullMQ's `prefix` of partition `<queue>.<tenant>` (for BullMQ's own `Queue`): `<prefix>:{<shard tag>}`. */
  partitionPrefix(queue: string, tenant: string): string {
    return this.#layout.partitionPrefix(checkQueueName(queue), checkTenant(tenant));
  }

  /** Partition handles cached right now (at most `maxCachedPartitions`). */
  get cachedPartitions(): number {
    return this.#partitions.size;
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
    return enqueueJobs(this.#partitions, this.#index, this.#layout, this.options, queue, normalised);
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
    const partition = this.#partitions.get(queue, tenant);
    for (;;) {
      const token = `${workerId}:${randomUUID()}`;
      const call = this.#takeCall(partition, queue, tenant, { token, lockDurationMs });
      const reply = await this.#index.take(call);
      this.#announced(partition, call.announcedAt);
      const job = await this.#taken(partition, queue, tenant, token, reply);
      if (job !== 'retry') return job;
    }
  }

  /**
   * A fetch's raw reply (moveToActive's; TAKE marks the last job waiting) as an ActiveJob:
   * null when the partition had none (its ready-index entry settled, waits woken when its
   * first delayed job falls due), 'retry' after failing a job BullMQ marked to fail. (BullMQ
   * job schedulers, which a Worker would advance here, are not supported on partitions.)
   */
  async #taken(
    partition: Partition,
    queue: string,
    tenant: string,
    token: string,
    reply: unknown[],
  ): Promise<ActiveJob | null | 'retry'> {
    const [data, id] = raw2NextJobData(reply);
    if (!data) {
      const due = Number(reply[3]); // moveToActive's: the first delayed job's due time, or 0
      if (due > 0) this.#index.wakeAt(queue, due);
      return null;
    }
    const job = fetchedJob(partition, data, id, token);
    if (job.deferredFailure) {
      // BullMQ's stalled sweep marks a job that stalled too often to fail on its next fetch.
      const context = { settings: this.#finish, partition, queue, tenant };
      await failJob(context, job, token, new Error(job.deferredFailure));
      return 'retry';
    }
    return toActiveJob(queue, tenant, partition, job, token, reply[4] === 1);
  }

  /**
   * A take from the partition (scripts.ts TAKE), which announces the partition to the
   * stalled sweeps in the same script, before its moveToActive, when the last
   * announcement is older than half the grace period: a sweep forgets a partition only
   * when nothing in it is active and its announcement is older than the whole of it.
   */
  #takeCall(partition: Partition, queue: string, tenant: string, lock: TakeLock | null): TakeCall {
    const announce = Date.now() - partition.markedAt > ACTIVE_GRACE_MS / 2;
    return this.#index.takeCall(queue, tenant, partition.prefix, announce, lock);
  }

  /** Records an announcement once the call that carried it went through (null: none). */
  #announced(partition: Partition, at: number | null): void {
    partition.markedAt = Math.max(partition.markedAt, at ?? 0);
  }

  /**
   * With `fetchNext`, one script call completes the job and takes the next one, as a
   * plain BullMQ Worker does: of the same partition (scripts.ts FINISH_NEXT: moveToFinished
   * with fetch-next, job-moves.ts, which costs Redis less than FINISH_AND_TAKE), or of
   * `fetchNext.tenant`'s (FINISH_AND_TAKE). A job counted in a batch completes in its own
   * MULTI first, and a tenant of another shard is fetched from on its own. The job that was
   * its partition's last one waiting (`lastReady`) retires the partition in the same call
   * (its events and completed jobs; its ready-index entry went when it was taken); one
   * counted in a batch leaves that to the stalled sweep.
   */
  async complete(job: ActiveJob, result: unknown, options: CompleteOptions = {}): Promise<ActiveJob | null> {
    this.#checkOpen();
    const next = options.fetchNext;
    if (next !== undefined) checkLockDuration(next.lockDurationMs);
    const tenant = next?.tenant === undefined ? job.tenant : checkTenant(next.tenant);
    const json = serialiseResult(result);
    const { token, job: bullJob, partition: own } = job.lease as BullMqLease;
    const { queue } = job;
    const context = { settings: this.#finish, partition: own, queue, tenant: job.tenant };
    const elsewhere = tenant !== job.tenant;
    // FINISH_AND_TAKE touches both partitions in one script: only within one shard (slot).
    const crossShard = elsewhere && this.#layout.shardOf(tenant) !== this.#layout.shardOf(job.tenant);
    const settles = job.lastReady === true && batchOf(bullJob) === null;
    // Completes without taking a next job; the partition's last job waiting settles it.
    // 'lost': the job is (or will be) run again by whoever holds it now; nothing to do.
    const finishOwn = async () => {
      if (!settles) return completeJob(context, bullJob, token, json);
      const take = this.#takeCall(own, queue, job.tenant, null);
      const { outcome } = await completeAndNext(context, bullJob, token, json, take, null);
      if (outcome === 'finished') this.#announced(own, take.announcedAt);
      return outcome;
    };
    if (next === undefined) {
      await finishOwn();
      return null;
    }
    const fetchNext = () =>
      this.#afterCompletion(queue, () => this.fetch(queue, tenant, next.workerId, next.lockDurationMs));
    // A job counted in a batch finishes in a MULTI with its count, and one handing on to
    // another shard on its own: the next job is fetched apart.
    if (batchOf(bullJob) !== null || crossShard) {
      await finishOwn();
      return fetchNext();
    }
    const partition = elsewhere ? this.#partitions.get(queue, tenant) : own;
    // The fetch-next locks the next job with the finished job's token (as BullMQ's does).
    const nextToken = elsewhere ? `${next.workerId}:${randomUUID()}` : token;
    const lock = { token: nextToken, lockDurationMs: next.lockDurationMs };
    // FINISH_NEXT: the completion's fetch-next takes the lock, for next.lockDurationMs.
    const take = this.#takeCall(partition, queue, tenant, elsewhere ? lock : null);
    const finished = elsewhere
      ? await completeAndTake(context, bullJob, token, json, take, settles ? job.tenant : null)
      : await completeAndNext(context, bullJob, token, json, take, next.lockDurationMs);
    // Refused (lock lost): nothing was taken either, so take the next job the usual way.
    if (finished.outcome === 'lost') return fetchNext();
    this.#announced(partition, take.announcedAt);
    return this.#afterCompletion(queue, async () => {
      const taken = await this.#taken(partition, queue, tenant, nextToken, finished.next as unknown[]);
      return taken === 'retry' ? fetchNext() : taken;
    });
  }

  /**
   * Takes the next job after a completion: a failure is no failed completion (reported,
   * null). A null may mark the tenant empty, so the queue's waits are woken: the read of
   * the ready index that follows lists the tenant again if it still has jobs.
   */
  #afterCompletion(queue: string, next: () => Promise<ActiveJob | null>): Promise<ActiveJob | null> {
    return next().catch((error: Error) => {
      this.emit('redis:error', { error });
      this.#index.wakeAt(queue, Date.now());
      return null;
    });
  }

  async fail(job: ActiveJob, error: Error, options: { unrecoverable?: boolean } = {}): Promise<FailOutcome> {
    this.#checkOpen();
    const { token, job: bullJob, partition } = job.lease as BullMqLease;
    const cause = error instanceof Error ? error : new Error(String(error));
    const context = { settings: this.#finish, partition, queue: job.queue, tenant: job.tenant };
    const outcome = await failOrRetry(context, bullJob, token, cause, options.unrecoverable === true);
    if (outcome === 'retried') await this.#index.announce(job.queue, job.tenant);
    return outcome === 'failed' ? 'failed' : 'retrying';
  }

  async extendLocks(jobs: readonly ActiveJob[], lockDurationMs: number): Promise<string[]> {
    this.#checkOpen();
    checkLockDuration(lockDurationMs);
    return extendLocks(jobs, lockDurationMs);
  }

  async recoverStalled(queue: string): Promise<number> {
    this.#checkOpen();
    return recoverStalled(this.#partitions, this.#index, checkQueueName(queue));
  }

  /**
   * BullMQ's own per-queue global concurrency of the tenant's partition. Caps set in the
   * same moment go out together (partition/caps.ts); the queue's workers are woken only
   * when a cap changed (lifting one that was not there frees no place).
   */
  async setTenantConcurrency(queue: string, tenant: string, max: number | null): Promise<void> {
    return this.setTenantConcurrencies(queue, new Map([[tenant, max]]));
  }

  async setTenantConcurrencies(queue: string, caps: ReadonlyMap<string, number | null>): Promise<void> {
    this.#checkOpen();
    checkQueueName(queue);
    return this.#caps.set(queue, checkCaps(caps));
  }

  /** Waiting, active and delayed as BullMQ holds them now; completed and failed exact (jobs/translate.ts readCounts). */
  async counts(queue: string, tenant: string): Promise<JobCounts> {
    this.#checkOpen();
    return readCounts(this.#redis, this.#partitions.backend(checkQueueName(queue), checkTenant(tenant)));
  }

  async getJob(queue: string, tenant: string, id: string): Promise<JobInfo | null> {
    this.#checkOpen();
    const partition = this.#partitions.get(checkQueueName(queue), checkTenant(tenant));
    return readJobInfo(partition, queue, tenant, checkJobId(id));
  }

  async batchProgress(batchId: string): Promise<BatchProgress> {
    this.#checkOpen();
    return readBatchProgress(this.#redis, this.#layout, batchId);
  }

  async purge(queue: string, tenant?: string): Promise<string[]> {
    this.#checkOpen();
    const slug = tenant === undefined ? null : checkTenant(tenant);
    return purgePartitions(this.#redis, this.#layout, checkQueueName(queue), slug);
  }

  /** Purges `tenant`'s partitions of every queue it has jobs in; resolves to those queues, sorted. */
  purgeTenant(tenant: string): Promise<string[]> {
    this.#checkOpen();
    return purgeTenant(this.#redis, this.#layout, checkTenant(tenant));
  }

  /** Closes the base backend, the subscriber and (if the engine opened it) the connection; idempotent. */
  close(): Promise<void> {
    this.#closePromise ??= this.#close();
    return this.#closePromise;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    const quit = async () => void (this.#ownsConnection && (await this.#redis.quit()));
    // Caps still being written are not waited for: with Redis unreachable they never
    // settle (commands wait for a reconnection); quitting rejects them instead.
    const steps = [() => this.#partitions.close(), () => this.#index.close(), quit];
    const outcome = await runCloseSteps(steps, this.options.closeTimeoutMs, (error) =>
      this.emit('redis:error', { error }),
    );
    if (outcome === 'timeout') {
      this.#index.disconnect();
      if (this.#ownsConnection) this.#redis.disconnect();
    }
  }

  #checkOpen(): void {
    if (this.#closePromise) throw new ClosedError('BullMqEngine');
  }
}
