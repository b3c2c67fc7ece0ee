/**
 * The ready index of the BullMQ engine: per shard of a logical queue, a sorted set of
 * tenants scored by the time from which they may have a job ready (now for waiting jobs,
 * the due time for delayed ones), plus one pub/sub channel per queue that wakes idle
 * workers. Readers see the union of the shards (a tenant is in exactly one), so the
 * fleet's picker chooses among every ready tenant of the queue, whatever its shard.
 *
 * All subscriptions of one engine share one subscriber connection, opened on the first
 * `waitForReady`, so the connections stay bounded however many queues and tenants exist.
 */
import type { Redis } from 'ioredis';
import { MAX_DURATION_MS } from '../../validate.js';
import { getOrCreate } from '../get-or-create.js';
import type { KeyLayout } from './cluster/key-layout.js';
import type { FleetCommands, FleetMulti } from './scripts.js';

/** A fetch's keys and arguments (scripts.ts TAKE), see `ReadyIndex.takeCall`. */
export interface TakeCall {
  keys: [ready: string, activeTenants: string, finished: string];
  args: (string | number | Buffer)[];
  /** When it announces the partition to the stalled sweeps, the time it announces; else null. */
  announcedAt: number | null;
}

/** The lock a fetch takes its job with. */
export interface TakeLock {
  token: string;
  lockDurationMs: number;
}

/** How long a partition stays on the sweep list after a fetch announced it, idle or not. */
export const ACTIVE_GRACE_MS = 60_000;

/** The BullMQ keys of one partition that the index scripts read. */
export interface PartitionKeys {
  wait: string;
  prioritized: string;
  delayed: string;
  paused: string;
  active: string;
  stalled: string;
  events: string;
  completed: string;
  /** The prefix of the partition's job hashes: `P:{tag}:Q.T:`. */
  jobPrefix: string;
}

/**
 * `P:{tag}:Q.` from a partition's `P:{tag}:Q.T:`: a finished member `T:id` completes it to
 * the job's hash (the finished set is per shard, so every member shares the tag).
 */
function queueJobPrefix(partitionPrefix: string, tenant: string): string {
  return partitionPrefix.slice(0, partitionPrefix.length - tenant.length - 1);
}

/** Redis key and channel names of the index, and the operations on them. */
export class ReadyIndex {
  readonly #redis: Redis & FleetCommands;
  readonly #layout: KeyLayout;
  /** Completed jobs each shard of a logical queue keeps (job-moves.ts TRIM_FINISHED). */
  readonly #keepCompleted: number;
  readonly #openSubscriber: () => Redis;
  #subscriber: Redis | null = null;
  readonly #subscribed = new Map<string, Promise<unknown>>();
  /** Queues whose SUBSCRIBE has been confirmed. */
  readonly #listening = new Set<string>();
  readonly #waiters = new Map<string, Set<() => void>>();
  /** Per queue, the earliest wake-up {@link wakeAt} set, and its timer. */
  readonly #dueWakes = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  #closed = false;

  constructor(
    redis: Redis & FleetCommands,
    layout: KeyLayout,
    keepCompleted: number,
    openSubscriber: () => Redis,
  ) {
    this.#redis = redis;
    this.#layout = layout;
    this.#keepCompleted = keepCompleted;
    this.#openSubscriber = openSubscriber;
  }

  /** The ready set of the tenant's shard. */
  readyKey(queue: string, tenant: string): string {
    return this.#layout.readyKey(queue, this.#layout.shardOf(tenant));
  }

  /** The active-tenants set of the tenant's shard. */
  activeTenantsKey(queue: string, tenant: string): string {
    return this.#layout.activeTenantsKey(queue, this.#layout.shardOf(tenant));
  }

  /** The completed jobs the tenant's shard of the queue keeps (job-moves.ts TRIM_FINISHED). */
  finishedKey(queue: string, tenant: string): string {
    return this.#layout.finishedKey(queue, this.#layout.shardOf(tenant));
  }

  channel(queue: string): string {
    return this.#layout.channel(queue);
  }

  /** Queues "tenant may be ready from `at`" on an enqueue's MULTI (of the tenant's shard). */
  announceIn(multi: FleetMulti, queue: string, tenant: string, at: number): void {
    multi.zadd(this.readyKey(queue, tenant), 'LT', at, tenant);
  }

  /** Queues the wake-up message of `queue` on a MULTI. */
  publishIn(multi: FleetMulti, queue: string): void {
    multi.publish(this.channel(queue), '1');
  }

  /** Lists `tenant` as ready now and wakes waiters (after a retry or a stalled job). */
  async announce(queue: string, tenant: string): Promise<void> {
    await this.#redis
      .multi()
      .zadd(this.readyKey(queue, tenant), 'LT', Date.now(), tenant)
      .publish(this.channel(queue), '1')
      .exec();
  }

  /** Wakes the waiters of `queue` in every process. */
  async publish(queue: string): Promise<void> {
    await this.#redis.publish(this.channel(queue), '1');
  }

  /** The tenants ready now, over every shard. */
  async readyTenants(queue: string): Promise<string[]> {
    const now = Date.now();
    return (await this.#eachShard(queue, (key) => this.#redis.zrangebyscore(key, '-inf', now))).flat();
  }

  /** Runs `read` on the ready key of every shard of `queue`, in parallel. */
  #eachShard<T>(queue: string, read: (readyKey: string) => Promise<T>): Promise<T[]> {
    return Promise.all(this.#layout.allShards().map((shard) => read(this.#layout.readyKey(queue, shard))));
  }

  /**
   * The keys and arguments of a fetch from the tenant's partition (scripts.ts TAKE, alone,
   * after FINISH_AND_TAKE's moveToFinished, or around FINISH_NEXT's): `prefix` is the
   * partition's key prefix `P:{tag}:Q.T:`; with `announce`, the partition is first
   * announced to the stalled sweeps (added to its shard's active-tenants set).
   */
  takeCall(
    queue: string,
    tenant: string,
    prefix: string,
    announce: boolean,
    lock: TakeLock | null,
  ): TakeCall {
    const now = Date.now();
    return {
      announcedAt: announce ? now : null,
      keys: [
        this.readyKey(queue, tenant),
        this.activeTenantsKey(queue, tenant),
        this.finishedKey(queue, tenant),
      ],
      args: [
        tenant,
        announce ? '1' : '0',
        queueJobPrefix(prefix, tenant),
        this.#keepCompleted,
        prefix,
        now,
        // None when the completion's fetch-next takes the job (FINISH_NEXT).
        lock === null ? '' : lock.token,
        lock === null ? '' : lock.lockDurationMs,
      ],
    };
  }

  /** Takes the partition's next job (TAKE); resolves to moveToActive's raw reply. */
  take(call: TakeCall): Promise<unknown[]> {
    return this.#redis.fleetTake(...call.keys, ...call.args);
  }

  /** Tenants whose partitions may hold active jobs, over every shard. */
  async activeTenants(queue: string): Promise<string[]> {
    const shards = this.#layout.allShards();
    const lists = await Promise.all(
      shards.map((shard) => this.#redis.zrange(this.#layout.activeTenantsKey(queue, shard), 0, -1)),
    );
    return lists.flat();
  }

  /** Re-lists a partition with jobs and forgets it as active once idle; see RECONCILE. */
  async reconcile(queue: string, tenant: string, keys: PartitionKeys): Promise<void> {
    await this.#redis.fleetReconcile(
      this.readyKey(queue, tenant),
      keys.wait,
      keys.prioritized,
      keys.delayed,
      keys.paused,
      keys.active,
      keys.stalled,
      this.activeTenantsKey(queue, tenant),
      keys.events,
      keys.completed,
      this.finishedKey(queue, tenant),
      tenant,
      Date.now(),
      ACTIVE_GRACE_MS,
      queueJobPrefix(keys.jobPrefix, tenant),
      this.#keepCompleted,
    );
  }

  /**
   * Resolves on a wake-up message for `queue`, when the earliest delayed tenant comes
   * due, after `timeoutMs`, or when `signal` aborts — whichever is first.
   *
   * "Delayed" means due after the moment of the call: a caller reads the ready tenants
   * (due by then) right after it starts waiting, so a tenant falling due in between is
   * either read as ready or wakes the wait at once. Counting from the moment the index is
   * read instead, later, missed a tenant that fell due in that gap (a timer that fires a
   * millisecond before its due time, then the read just before it, the wait just after):
   * it slept until the poll interval.
   */
  async waitForReady(queue: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const since = Date.now();
    if (signal?.aborted) return;
    const waiters = getOrCreate(this.#waiters, queue, () => new Set<() => void>());
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => {
      wake = resolve;
    });
    waiters.add(wake);
    signal?.addEventListener('abort', wake, { once: true });
    let timer: NodeJS.Timeout | undefined;
    // A message published before our SUBSCRIBE is in place is not delivered: a waiter
    // that arrived that early checks the index itself once subscribed.
    const early = !this.#listening.has(queue);
    try {
      let dueIn = Number.POSITIVE_INFINITY;
      try {
        await this.#subscribe(queue);
        const now = Date.now();
        if (early) {
          const ready = await this.#eachShard(queue, (key) =>
            this.#redis.zrangebyscore(key, '-inf', now, 'LIMIT', 0, 1),
          );
          if (ready.some((tenants) => tenants.length > 0)) return;
        }
        const next = await this.#eachShard(queue, (key) =>
          this.#redis.zrangebyscore(key, `(${since}`, '+inf', 'WITHSCORES', 'LIMIT', 0, 1),
        );
        for (const [, score] of next)
          if (score !== undefined) dueIn = Math.min(dueIn, Number(score) - Date.now());
      } catch {
        // Redis unreachable: the wait degrades to a plain timeout, which is all a hint needs.
      }
      timer = setTimeout(wake, Math.max(0, Math.min(timeoutMs, dueIn)));
      await woken;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', wake);
      waiters.delete(wake);
    }
  }

  /**
   * Wakes the local waiters of `queue` at `at` (epoch ms). A take that found only delayed
   * jobs moved its tenant's score to the first one's due time (scripts.ts SETTLE); a wait
   * under way read the index's next due time as it began, and would sleep past this one
   * until its poll interval ran out. The wait this wakes reads the index again. Other
   * processes are not told: this one's worker takes the job when due, theirs at a poll.
   */
  wakeAt(queue: string, at: number): void {
    if (this.#closed) return;
    const pending = this.#dueWakes.get(queue);
    if (pending !== undefined && pending.at <= at) return;
    clearTimeout(pending?.timer);
    // A timer holds at most MAX_DURATION_MS (about 24.8 days), and may fire a little early:
    // before `at`, it is set again for the rest.
    const timer = setTimeout(
      () => {
        this.#dueWakes.delete(queue);
        if (at > Date.now()) this.wakeAt(queue, at);
        else this.#wake(queue);
      },
      Math.min(MAX_DURATION_MS, Math.max(0, at - Date.now())),
    );
    timer.unref();
    this.#dueWakes.set(queue, { at, timer });
  }

  /** Wakes every local waiter (used by close). */
  wakeAll(): void {
    for (const { timer } of this.#dueWakes.values()) clearTimeout(timer);
    this.#dueWakes.clear();
    for (const queue of this.#waiters.keys()) this.#wake(queue);
  }

  #wake(queue: string): void {
    for (const wake of [...(this.#waiters.get(queue) ?? [])]) wake();
  }

  /** Closes the subscriber connection, if one was opened. */
  async close(): Promise<void> {
    this.#closed = true;
    this.wakeAll();
    const subscriber = this.#subscriber;
    this.#subscriber = null;
    if (!subscriber) return;
    try {
      await subscriber.quit();
    } catch {
      subscriber.disconnect();
    }
  }

  /** Forcibly drops the subscriber connection. */
  disconnect(): void {
    this.#subscriber?.disconnect();
  }

  #subscribe(queue: string): Promise<unknown> {
    let subscribing = this.#subscribed.get(queue);
    if (!subscribing) {
      if (!this.#subscriber) {
        const subscriber = this.#openSubscriber();
        subscriber.on('message', (channel: string) => {
          this.#wake(channel.slice(`${this.#layout.prefix}:#ready:`.length));
        });
        this.#subscriber = subscriber;
      }
      // Cached, and forgotten on failure so that the next wait retries.
      subscribing = this.#subscriber.subscribe(this.channel(queue)).then(
        () => this.#listening.add(queue),
        (error: unknown) => {
          this.#subscribed.delete(queue);
          throw error;
        },
      );
      this.#subscribed.set(queue, subscribing);
    }
    return subscribing;
  }
}
