/**
 * The BullMQ objects behind the partitions: one BullMQ queue per (queue, tenant),
 * named `<queue>.<tenant>`, so BullMQ's per-queue concurrency, rate limit, pause,
 * retries and bull-board all work per tenant.
 *
 * A partition's BullMQ prefix carries its shard's hash tag (`P:{Q#s}`, see
 * cluster/key-layout.ts), so BullMQ's scripts stay within one slot on Redis Cluster.
 *
 * A partition's BullMQ scripts are a sibling backend of one base backend (`forQueue`),
 * bound to the partition's keys, over the engine's one shared command connection, built
 * when first needed. No BullMQ `Worker` is built per partition: the engine takes and
 * completes jobs with scripts of its own (../job-moves.ts), as a Worker would, and settles
 * its own locks and stalled jobs (../jobs/locks.ts). A handle owns no connection, listener or
 * timer, so handles are kept in a bounded LRU that drops the least recently used without
 * closing anything; a job in hand keeps its own handle (../jobs/translate.ts `BullMqLease`).
 */
import { createRedisBackend, type RedisQueueBackend } from 'bullmq';
import type { Redis } from 'ioredis';
import type { KeyLayout } from '../cluster/key-layout.js';
import type { ResolvedBullMqEngineOptions } from '../options.js';
import type { PartitionKeys } from '../ready-index.js';

/**
 * What a BullMQ `Job` reads of the queue it belongs to: its naming helpers and backend
 * (Job.fromJSON), and for a retry (Job.moveToFailed) the options, with tracing off.
 */
export interface JobHost {
  readonly name: string;
  readonly qualifiedName: string;
  readonly opts: object;
  readonly backend: RedisQueueBackend;
  toKey(type: string): string;
  trace<T>(
    kind: unknown,
    operation: string,
    destination: string,
    callback: () => Promise<T> | T,
  ): Promise<T> | T;
  waitUntilReady(): Promise<unknown>;
  emit(): boolean;
  on(): JobHost;
  removeListener(): JobHost;
}

/** The options BullMQ's scripts read, the sibling's own copy (RedisQueueBackend keeps them protected). */
function optionsOf(backend: RedisQueueBackend): { lockDuration?: number } {
  return (backend as unknown as { queue: { opts: { lockDuration?: number } } }).queue.opts;
}

/** Per-minute throughput points kept per partition: one hour. */
export const METRICS_DATA_POINTS = 60;

/** The BullMQ queue name of a partition. */
export function partitionName(queue: string, tenant: string): string {
  return `${queue}.${tenant}`;
}

/**
 * A partition's handle, and the {@link JobHost} of its BullMQ `Job` objects. Its keys are
 * its prefix and a type, as BullMQ names them (`P:{tag}:Q.T:wait`); BullMQ's backend (a
 * sibling of the base: its scripts bound to the partition's keys, about 5 KB) is built on
 * first use, by what runs BullMQ's own scripts: enqueueing, a failure or retry, counts, a
 * completion that takes no next job and does not retire the partition, a job counted in
 * a batch, lock renewal and the stalled sweep. Takes, and completions that take the next
 * job or retire the partition, need none of it: at 10,000 tenants a backend built at
 * every partition's first take, kept in the LRU until it dropped out, made the worker's
 * garbage collection several times raw BullMQ's.
 */
export class Partition implements JobHost {
  /** The BullMQ queue name, `<queue>.<tenant>`. */
  readonly name: string;
  /** `P:{tag}:Q.T`, what BullMQ calls the queue's qualified name. */
  readonly qualifiedName: string;
  /** The prefix of its keys and job hashes, `P:{tag}:Q.T:`. */
  readonly prefix: string;
  /** When this process last announced the partition to the stalled sweeps. */
  markedAt = 0;
  readonly #base: RedisQueueBackend;
  readonly #keyPrefix: string;
  #backend: RedisQueueBackend | undefined;

  /** `keyPrefix`: the BullMQ prefix of its shard, `P:{tag}` (cluster/key-layout.ts). */
  constructor(base: RedisQueueBackend, keyPrefix: string, name: string) {
    this.#base = base;
    this.#keyPrefix = keyPrefix;
    this.name = name;
    this.qualifiedName = `${keyPrefix}:${name}`;
    this.prefix = `${this.qualifiedName}:`;
  }

  /** BullMQ's scripts bound to the partition's keys, on the shared connection. */
  get backend(): RedisQueueBackend {
    this.#backend ??= this.#base.forQueue(this.name, this.#keyPrefix) as RedisQueueBackend;
    return this.#backend;
  }

  /** The engine's command connection, once BullMQ has it ready. */
  get client(): Promise<unknown> {
    return this.#base.client;
  }

  /** The options a BullMQ `Job` reads for a retry (backoff settings, telemetry off). */
  get opts(): object {
    return optionsOf(this.backend);
  }

  toKey(type: string): string {
    return this.prefix + type;
  }

  trace<T>(_kind: unknown, _operation: string, _destination: string, callback: () => Promise<T> | T) {
    return callback();
  }

  waitUntilReady(): Promise<unknown> {
    return this.#base.client;
  }

  emit(): boolean {
    return false;
  }

  on(): JobHost {
    return this;
  }

  removeListener(): JobHost {
    return this;
  }
}

/** The LRU of partition handles, all siblings of one base backend. */
export class PartitionCache {
  readonly #redis: Redis;
  readonly #options: ResolvedBullMqEngineOptions;
  readonly #layout: KeyLayout;
  readonly #onError: (error: Error) => void;
  readonly #base: RedisQueueBackend;
  /** Map order is recency: the first entry is the least recently used. */
  readonly #partitions = new Map<string, Partition>();

  constructor(
    redis: Redis,
    options: ResolvedBullMqEngineOptions,
    layout: KeyLayout,
    onError: (error: Error) => void,
  ) {
    this.#redis = redis;
    this.#options = options;
    this.#layout = layout;
    this.#onError = onError;
    // The options a Worker would give BullMQ's scripts; every sibling copies them.
    this.#base = createRedisBackend('fleet-base', {
      connection: redis,
      prefix: options.prefix,
      skipVersionCheck: true,
      // Read by moveStalledJobsToWait.
      maxStalledCount: options.maxStalledCount,
      stalledInterval: options.stalledIntervalMs,
      // BullMQ's metrics: an exact finished count, bumped in the same script that
      // finishes the job, plus per-minute throughput (bull-board, Queue.getMetrics).
      metrics: { maxDataPoints: METRICS_DATA_POINTS },
    } as Parameters<typeof createRedisBackend>[1]);
    this.#base.on('error', (error: Error) => onError(error));
  }

  /** The engine's command connection. */
  get redis(): Redis {
    return this.#redis;
  }

  /** Partition handles cached right now (for tests and stats). */
  get size(): number {
    return this.#partitions.size;
  }

  /** The partition's handle, most recently used from now on. */
  get(queue: string, tenant: string): Partition {
    const name = partitionName(queue, tenant);
    let partition = this.#partitions.get(name);
    if (partition) {
      this.#partitions.delete(name);
    } else {
      partition = new Partition(this.#base, this.#layout.partitionPrefix(queue, tenant), name);
      if (this.#partitions.size >= this.#options.maxCachedPartitions)
        this.#partitions.delete(this.#partitions.keys().next().value!);
    }
    this.#partitions.set(name, partition);
    return partition;
  }

  /** The partition's BullMQ backend (built on its first use, see {@link Partition}). */
  backend(queue: string, tenant: string): RedisQueueBackend {
    return this.get(queue, tenant).backend;
  }

  /** The BullMQ keys of a partition that the ready-index scripts need. */
  keys(queue: string, tenant: string): PartitionKeys {
    const { prefix } = this.get(queue, tenant);
    return {
      wait: `${prefix}wait`,
      prioritized: `${prefix}prioritized`,
      delayed: `${prefix}delayed`,
      paused: `${prefix}paused`,
      active: `${prefix}active`,
      stalled: `${prefix}stalled`,
      events: `${prefix}events`,
      completed: `${prefix}completed`,
      jobPrefix: prefix,
    };
  }

  /** Forgets every handle and closes the base backend (which does not own the connection). */
  async close(): Promise<void> {
    this.#partitions.clear();
    try {
      await this.#base.close();
    } catch (error) {
      this.#onError(error as Error);
    }
  }
}
