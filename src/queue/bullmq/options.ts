/**
 * Options of the BullMQ engine: one input type, one resolved type, one resolver with
 * the defaults in one object.
 */
import { ConfigError, describe } from '../../reporting/errors.js';
import { durationOption, integerOption } from '../../validate.js';
import { type BullMqConnection, checkConnection } from './cluster/connection.js';

/** Options of {@link BullMqEngine}. */
export interface BullMqEngineOptions {
  /**
   * A `redis://` URL, an ioredis `Redis` or `Cluster` shared with the caller, or a Redis
   * Cluster's seed nodes as `{ cluster: ['redis://host:port', { host, port }, …] }`. A
   * passed-in instance is not closed by the engine; it must not use ioredis' `keyPrefix`.
   */
  connection: BullMqConnection;
  /**
   * Hash slots each logical queue is spread over. Each tenant belongs to one shard (a
   * stable hash of its slug) with its partitions and ready index; on Redis Cluster the
   * shards of one busy queue land on different masters. Fixed for a prefix's life:
   * changing it strands the jobs already waiting (see docs/engines.md). @default 1
   */
  shards?: number;
  /** Prefix of every Redis key the engine writes (BullMQ's `prefix`). @default 'fleet' */
  prefix?: string;
  /** `CLIENT SETNAME` of the connections the engine opens itself (`<name>` and `<name>:sub`). @default 'tenant-fleet' */
  clientName?: string;
  /**
   * Partition handles (BullMQ's scripts bound to one partition's keys) kept in memory;
   * the least recently used beyond this are dropped (they hold no connection, listener
   * or timer, and a job in hand keeps its own) and rebuilt when their tenant returns.
   * @default 1024
   */
  maxCachedPartitions?: number;
  /** Least time between two stalled-job sweeps of one partition, fleet-wide. @default 5000 */
  stalledIntervalMs?: number;
  /** Times a job may lose its lock and be put back before it is failed instead. @default 1 */
  maxStalledCount?: number;
  /** Completed jobs kept per logical queue (per shard; docs/engines.md § Redis memory). @default 100 */
  keepCompleted?: number;
  /** Failed jobs kept per partition, with their error (`removeOnFail.count`). @default 1000 */
  keepFailed?: number;
  /**
   * How long a batch record (the counts `batchProgress` reads, one Redis hash per fan-out)
   * lives after its last job was enqueued or finished; after that `batchProgress` reads
   * zeros. @default 604800000 (7 days)
   */
  batchTtlMs?: number;
  /** Largest `data` accepted, in bytes of JSON. @default 524288 */
  maxDataBytes?: number;
  /** Deadline of `close()`, after which connections are dropped. @default 5000 */
  closeTimeoutMs?: number;
}

/** {@link BullMqEngineOptions} with every default applied. */
export type ResolvedBullMqEngineOptions = Required<BullMqEngineOptions>;

const DEFAULTS = {
  prefix: 'fleet',
  shards: 1,
  clientName: 'tenant-fleet',
  maxCachedPartitions: 1024,
  stalledIntervalMs: 5000,
  maxStalledCount: 1,
  keepCompleted: 100,
  keepFailed: 1000,
  batchTtlMs: 7 * 24 * 60 * 60 * 1000,
  maxDataBytes: 512 * 1024,
  closeTimeoutMs: 5000,
} satisfies Omit<ResolvedBullMqEngineOptions, 'connection'>;

// The sizes, with their bounds. 100,000 cached partition handles are a few hundred MB; a
// job put back more than 1,000 times is never going to finish; a million kept jobs per
// partition is past what anyone reads; Redis refuses a string over 512 MiB, so larger
// `data` could never be stored.
const SIZES = {
  shards: [1, 1024],
  maxCachedPartitions: [1, 100_000],
  maxStalledCount: [0, 1_000],
  keepCompleted: [1, 1_000_000],
  keepFailed: [1, 1_000_000],
  maxDataBytes: [1, 512 * 1024 * 1024],
} as const;

const DURATION_MINIMUMS = { stalledIntervalMs: 1, closeTimeoutMs: 0, batchTtlMs: 1 } as const;

/** Applies defaults and checks every option; throws `ConfigError`. */
export function resolveBullMqEngineOptions(options: BullMqEngineOptions): ResolvedBullMqEngineOptions {
  if (typeof options !== 'object' || options === null)
    throw new ConfigError('options', `Expected an options object, got ${describe(options)}`);
  const resolved = { ...DEFAULTS, ...options };
  checkConnection(resolved.connection);
  for (const field of ['prefix', 'clientName'] as const) {
    if (typeof resolved[field] !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(resolved[field]))
      throw new ConfigError(
        field,
        `Expected \`${field}\` to be 1 to 64 letters, digits, _ or -, got ${describe(resolved[field])}`,
      );
  }
  for (const [field, [min, max]] of Object.entries(SIZES))
    integerOption(field, resolved[field as keyof typeof SIZES], min, max);
  for (const [field, min] of Object.entries(DURATION_MINIMUMS))
    durationOption(field, resolved[field as keyof typeof DURATION_MINIMUMS], min);
  return resolved;
}
