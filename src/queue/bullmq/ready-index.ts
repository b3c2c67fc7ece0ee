/**
 * The ready index of the BullMQ engine: per logical queue, a sorted set of tenants
 * scored by the time from which they may have a job ready (now for waiting jobs, the
 * due time for delayed ones), plus a pub/sub channel that wakes idle workers.
 *
 * All subscriptions of one engine share one subscriber connection, opened on the first
 * `waitForReady`, so the connections stay bounded however many queues and tenants exist.
 */
import type { Redis } from 'ioredis';
import { getOrCreate } from '../get-or-create.js';
import type { FleetCommands, FleetMulti } from './scripts.js';

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
  /** The prefix of the partition's job hashes: `P:Q.T:`. */
  jobPrefix: string;
}

/** `P:Q.` from a partition's `P:Q.T:`: a finished member `T:id` completes it to the job's hash. */
function queueJobPrefix(keys: PartitionKeys, tenant: string): string {
  return keys.jobPrefix.slice(0, keys.jobPrefix.length - tenant.length - 1);
}

/** Redis key and channel names of the index, and the operations on them. */
export class ReadyIndex {
  readonly #redis: Redis & FleetCommands;
  readonly #prefix: string;
  /** Completed jobs each logical queue keeps of its idle partitions (scripts.ts RETIRE). */
  readonly #keepCompleted: number;
  readonly #openSubscriber: () => Redis;
  #subscriber: Redis | null = null;
  readonly #subscribed = new Map<string, Promise<unknown>>();
  /** Queues whose SUBSCRIBE has been confirmed. */
  readonly #listening = new Set<string>();
  readonly #waiters = new Map<string, Set<() => void>>();

  constructor(
    redis: Redis & FleetCommands,
    prefix: string,
    keepCompleted: number,
    openSubscriber: () => Redis,
  ) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#keepCompleted = keepCompleted;
    this.#openSubscriber = openSubscriber;
  }

  readyKey(queue: string): string {
    return `${this.#prefix}:${queue}:ready`;
  }

  activeTenantsKey(queue: string): string {
    return `${this.#prefix}:${queue}:active-tenants`;
  }

  /** Completed jobs handed over by idle partitions (scripts.ts RETIRE). */
  finishedKey(queue: string): string {
    return `${this.#prefix}:${queue}:finished`;
  }

  batchKey(batchId: string): string {
    return `${this.#prefix}:#batch:${batchId}`;
  }

  channel(queue: string): string {
    return `${this.#prefix}:#ready:${queue}`;
  }

  /** Queues "tenant may be ready from `at`" and a wake-up on an enqueue's MULTI. */
  announceIn(multi: FleetMulti, queue: string, tenant: string, at: number): void {
    multi.zadd(this.readyKey(queue), 'LT', at, tenant);
  }

  /** Queues the wake-up message of `queue` on a MULTI. */
  publishIn(multi: FleetMulti, queue: string): void {
    multi.publish(this.channel(queue), '1');
  }

  /** Lists `tenant` as ready now and wakes waiters (after a retry or a stalled job). */
  async announce(queue: string, tenant: string): Promise<void> {
    await this.#redis
      .multi()
      .zadd(this.readyKey(queue), 'LT', Date.now(), tenant)
      .publish(this.channel(queue), '1')
      .exec();
  }

  /** Wakes the waiters of `queue` in every process. */
  async publish(queue: string): Promise<void> {
    await this.#redis.publish(this.channel(queue), '1');
  }

  async readyTenants(queue: string): Promise<string[]> {
    return this.#redis.zrangebyscore(this.readyKey(queue), '-inf', Date.now());
  }

  /** After an empty fetch: removes the tenant unless its partition still has jobs. */
  async settle(queue: string, tenant: string, keys: PartitionKeys): Promise<void> {
    await this.#redis.fleetSettleReady(
      this.readyKey(queue),
      keys.wait,
      keys.prioritized,
      keys.delayed,
      keys.paused,
      keys.events,
      keys.completed,
      this.finishedKey(queue),
      tenant,
      queueJobPrefix(keys, tenant),
      this.#keepCompleted,
    );
  }

  /**
   * Records, before a fetch's moveToActive goes out on the same connection, that the
   * partition may get active jobs, so that stalled sweeps visit it. Not awaited by the
   * caller: ioredis sends commands in call order, so it reaches Redis first anyway.
   */
  markActive(queue: string, tenant: string): Promise<unknown> {
    // GT: a process whose clock lags never moves an announcement back in time.
    return this.#redis.zadd(this.activeTenantsKey(queue), 'GT', Date.now(), tenant);
  }

  /** Tenants whose partitions may hold active jobs. */
  activeTenants(queue: string): Promise<string[]> {
    return this.#redis.zrange(this.activeTenantsKey(queue), 0, -1);
  }

  /** Re-lists a partition with jobs and forgets it as active once idle; see RECONCILE. */
  async reconcile(queue: string, tenant: string, keys: PartitionKeys): Promise<void> {
    await this.#redis.fleetReconcile(
      this.readyKey(queue),
      keys.wait,
      keys.prioritized,
      keys.delayed,
      keys.paused,
      keys.active,
      keys.stalled,
      this.activeTenantsKey(queue),
      keys.events,
      keys.completed,
      this.finishedKey(queue),
      tenant,
      Date.now(),
      ACTIVE_GRACE_MS,
      queueJobPrefix(keys, tenant),
      this.#keepCompleted,
    );
  }

  /**
   * Resolves on a wake-up message for `queue`, when the earliest delayed tenant comes
   * due, after `timeoutMs`, or when `signal` aborts — whichever is first.
   */
  async waitForReady(queue: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
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
        if (
          early &&
          (await this.#redis.zrangebyscore(this.readyKey(queue), '-inf', Date.now(), 'LIMIT', 0, 1)).length >
            0
        )
          return;
        const next = await this.#redis.zrangebyscore(
          this.readyKey(queue),
          `(${Date.now()}`,
          '+inf',
          'WITHSCORES',
          'LIMIT',
          0,
          1,
        );
        if (next[1] !== undefined) dueIn = Number(next[1]) - Date.now();
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

  /** Wakes every local waiter (used by close). */
  wakeAll(): void {
    for (const waiters of this.#waiters.values()) for (const wake of [...waiters]) wake();
  }

  /** Closes the subscriber connection, if one was opened. */
  async close(): Promise<void> {
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
          const queueName = channel.slice(`${this.#prefix}:#ready:`.length);
          for (const wake of [...(this.#waiters.get(queueName) ?? [])]) wake();
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
