/**
 * Process snapshots on Redis, beside the fleet's queues: one string key per process
 * (`<prefix>:{#fleet}:process:<id>`, JSON, expiring after `ttlMs`) and a sorted set of the
 * ids by heartbeat, so a reader lists the processes without a SCAN. The `{#fleet}` hash
 * tag keeps them in one slot, so the MULTI and MGET below also work on Redis Cluster. Ids whose key has
 * expired (a process that died) are dropped from the set by the next reader.
 */
import type { Redis } from 'ioredis';
import { type BullMqConnection, openConnection } from '../queue/bullmq/cluster/connection.js';
import type { ProcessSnapshot } from './snapshot.js';
import type { SnapshotStore } from './snapshot-store.js';

/** Options of {@link RedisSnapshotStore}. */
export interface RedisSnapshotStoreOptions {
  /**
   * A URL or cluster seed nodes (the store opens and closes its own connection) or an
   * ioredis `Redis` / `Cluster` (left open); as the BullMQ engine's `connection`.
   */
  connection: BullMqConnection;
  /** The fleet's key prefix (the engine's `prefix`). @default 'fleet' */
  prefix?: string;
}

/** Reads at most this many processes (a fleet bigger than this is not one dashboard's). */
const MAX_PROCESSES = 1000;

/** {@link SnapshotStore} on Redis. */
export class RedisSnapshotStore implements SnapshotStore {
  readonly #redis: Redis;
  readonly #owns: boolean;
  readonly #prefix: string;
  #closed: Promise<void> | null = null;

  constructor(options: RedisSnapshotStoreOptions) {
    const { redis, owns } = openConnection(options.connection, 'tenant-fleet:snapshots', 1);
    this.#owns = owns;
    this.#redis = redis;
    // An unheard 'error' event would crash the process; a failed command rejects anyway.
    if (this.#owns) this.#redis.on('error', () => {});
    this.#prefix = options.prefix ?? 'fleet';
  }

  #key(id: string): string {
    return `${this.#prefix}:{#fleet}:process:${id}`;
  }

  get #index(): string {
    return `${this.#prefix}:{#fleet}:processes`;
  }

  async publish(snapshot: ProcessSnapshot, ttlMs: number): Promise<void> {
    await this.#redis
      .multi()
      .set(this.#key(snapshot.id), JSON.stringify(snapshot), 'PX', ttlMs)
      .zadd(this.#index, snapshot.heartbeatAt, snapshot.id)
      .exec();
  }

  async list(): Promise<ProcessSnapshot[]> {
    const ids = await this.#redis.zrevrange(this.#index, 0, MAX_PROCESSES - 1);
    if (ids.length === 0) return [];
    const values = await this.#redis.mget(ids.map((id) => this.#key(id)));
    const gone = ids.filter((_, i) => values[i] === null);
    if (gone.length > 0) await this.#redis.zrem(this.#index, ...gone);
    return values.flatMap((value) => (value === null ? [] : [JSON.parse(value) as ProcessSnapshot]));
  }

  async remove(id: string): Promise<void> {
    await this.#redis.multi().del(this.#key(id)).zrem(this.#index, id).exec();
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      if (!this.#owns) return;
      try {
        await this.#redis.quit();
      } catch {
        this.#redis.disconnect();
      }
    })();
    return this.#closed;
  }
}
