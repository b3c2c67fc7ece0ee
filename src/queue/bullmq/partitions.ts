/**
 * The BullMQ objects behind the partitions: one BullMQ queue per (queue, tenant),
 * named `<queue>.<tenant>`, so BullMQ's per-queue concurrency, rate limit, pause,
 * retries and bull-board all work per tenant.
 *
 * Every object runs over the engine's one shared command connection: the Workers are
 * built with a backend factory that passes `withBlockingConnection: false` (they fetch
 * with `getNextJob(token, { block: false })` and never block), and the stateless
 * operations (enqueue, counts, stalled sweeps) go through cheap sibling backends of
 * one base backend (`forQueue`). Workers are kept in a bounded LRU; a partition whose
 * jobs this process holds, or that an operation is using, is never evicted.
 */
import { type BackendFactory, createRedisBackend, type RedisQueueBackend, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ResolvedBullMqEngineOptions } from './options.js';
import type { PartitionKeys } from './ready-index.js';

/** A partition's cached BullMQ Worker and how much this process leans on it. */
export interface WorkerPartition {
  readonly key: string;
  readonly worker: Worker;
  /** Operations in progress on it. */
  pins: number;
  /** Active jobs this process fetched from it and has not settled yet. */
  held: number;
  /** When this process last announced the partition to the stalled sweeps. */
  markedAt: number;
}

/** Per-minute throughput points kept per partition: one hour. */
const METRICS_DATA_POINTS = 60;

/** A BullMQ backend factory that never opens a blocking connection of its own. */
const nonBlockingFactory: BackendFactory<RedisQueueBackend> = (name, opts, options) =>
  createRedisBackend(name, opts, { ...options, withBlockingConnection: false });

/** The BullMQ queue name of a partition. */
export function partitionName(queue: string, tenant: string): string {
  return `${queue}.${tenant}`;
}

/** The LRU of per-partition Workers plus the sibling backends of one base backend. */
export class PartitionCache {
  readonly #redis: Redis;
  readonly #options: ResolvedBullMqEngineOptions;
  readonly #onError: (error: Error) => void;
  readonly #base: RedisQueueBackend;
  /** Map order is recency: the first entry is the least recently used. */
  readonly #workers = new Map<string, WorkerPartition>();
  readonly #siblings = new Map<string, RedisQueueBackend>();
  readonly #closing = new Set<Promise<void>>();

  constructor(redis: Redis, options: ResolvedBullMqEngineOptions, onError: (error: Error) => void) {
    this.#redis = redis;
    this.#options = options;
    this.#onError = onError;
    this.#base = createRedisBackend('fleet-base', {
      connection: redis,
      prefix: options.prefix,
      skipVersionCheck: true,
      // Read by moveStalledJobsToWait on every sibling backend.
      maxStalledCount: options.maxStalledCount,
      stalledInterval: options.stalledIntervalMs,
    } as Parameters<typeof createRedisBackend>[1]);
    this.#base.on('error', (error: Error) => onError(error));
  }

  /** Workers currently cached (for tests and stats). */
  get cachedWorkers(): number {
    return this.#workers.size;
  }

  /** A backend bound to the partition, sharing the one connection; cheap and stateless. */
  backend(queue: string, tenant: string): RedisQueueBackend {
    const name = partitionName(queue, tenant);
    let sibling = this.#siblings.get(name);
    if (sibling) {
      this.#siblings.delete(name);
    } else {
      sibling = this.#base.forQueue(name) as RedisQueueBackend;
    }
    this.#siblings.set(name, sibling);
    if (this.#siblings.size > this.#options.maxCachedPartitions)
      this.#siblings.delete(this.#siblings.keys().next().value!);
    return sibling;
  }

  /** The BullMQ keys of a partition that the ready-index scripts need. */
  keys(queue: string, tenant: string): PartitionKeys {
    const backend = this.backend(queue, tenant);
    const { wait, prioritized, delayed, paused, active, stalled, events, completed } = backend.keys;
    return {
      wait: wait!,
      prioritized: prioritized!,
      delayed: delayed!,
      paused: paused!,
      active: active!,
      stalled: stalled!,
      events: events!,
      completed: completed!,
      jobPrefix: backend.toKey(''),
    };
  }

  /** Runs `fn` with the partition's Worker, which stays cached while `fn` runs. */
  async use<T>(queue: string, tenant: string, fn: (partition: WorkerPartition) => Promise<T>): Promise<T> {
    const partition = this.#touch(partitionName(queue, tenant));
    partition.pins += 1;
    try {
      return await fn(partition);
    } finally {
      partition.pins -= 1;
      this.#evict();
    }
  }

  /** Marks one more job of the partition as held by this process. */
  hold(partition: WorkerPartition): void {
    partition.held += 1;
  }

  /** Marks a held job as settled (completed, failed, or lost). */
  release(partition: WorkerPartition): void {
    partition.held = Math.max(0, partition.held - 1);
    this.#evict();
  }

  /** The cached Worker of a partition, if any (settling a held job finds it here). */
  cached(queue: string, tenant: string): WorkerPartition | undefined {
    return this.#workers.get(partitionName(queue, tenant));
  }

  /** Closes every Worker (none owns a connection) and the base backend. */
  async close(): Promise<void> {
    for (const partition of this.#workers.values()) this.#closeWorker(partition);
    this.#workers.clear();
    this.#siblings.clear();
    await Promise.allSettled([...this.#closing]);
    try {
      await this.#base.close();
    } catch (error) {
      this.#onError(error as Error);
    }
  }

  #touch(key: string): WorkerPartition {
    let partition = this.#workers.get(key);
    if (partition) {
      this.#workers.delete(key);
    } else {
      const worker = new Worker(
        key,
        null,
        {
          connection: this.#redis,
          prefix: this.#options.prefix,
          autorun: false,
          skipVersionCheck: true,
          maxStalledCount: this.#options.maxStalledCount,
          stalledInterval: this.#options.stalledIntervalMs,
          // BullMQ's metrics: an exact finished count, bumped in the same script that
          // finishes the job, plus per-minute throughput (bull-board, Queue.getMetrics).
          metrics: { maxDataPoints: METRICS_DATA_POINTS },
        },
        nonBlockingFactory,
      );
      // A Worker re-emits connection errors; unhandled, an 'error' event would throw.
      worker.on('error', (error) => this.#onError(error));
      partition = { key, worker, pins: 0, held: 0, markedAt: 0 };
    }
    this.#workers.set(key, partition);
    return partition;
  }

  #evict(): void {
    if (this.#workers.size <= this.#options.maxCachedPartitions) return;
    for (const partition of this.#workers.values()) {
      if (this.#workers.size <= this.#options.maxCachedPartitions) return;
      if (partition.pins > 0 || partition.held > 0) continue;
      this.#workers.delete(partition.key);
      this.#closeWorker(partition);
    }
  }

  #closeWorker(partition: WorkerPartition): void {
    const closing = partition.worker
      .close()
      .catch((error: Error) => this.#onError(error))
      .finally(() => this.#closing.delete(closing));
    this.#closing.add(closing);
  }
}
