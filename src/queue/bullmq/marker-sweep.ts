/**
 * Hears of jobs put into a partition through BullMQ's own API (`job.retry()`,
 * `job.promote()`, `queue.add(...)`, bull-board's buttons), which know nothing of the
 * ready index: without this, such a job waits until something else lists its tenant.
 *
 * Why a sweep of BullMQ's `marker` keys, and not the alternatives:
 * - Every BullMQ script that makes a job ready (add, retry, promote, reprocess, a delay
 *   elapsed) writes the partition's `<prefix>:{<tag>}:<queue>.<tenant>:marker` ZSET, the key a
 *   plain BullMQ Worker blocks on. The fleet never blocks (it fetches with BullMQ's
 *   moveToActive script, see partitions.ts), so nothing else reads or removes it: a
 *   marker is exactly "something made a job ready here", whoever wrote it.
 * - BullMQ's events stream is per partition: hearing every partition would take one
 *   XREAD over thousands of streams. Keyspace notifications are off by default and need
 *   a server setting. A fleet-aware bull-board adapter would cover bull-board only, not
 *   a script calling BullMQ directly; the sweep covers both, so the dashboard's
 *   bull-board uses BullMQ's plain adapter.
 *
 * The sweep walks the keyspace with one SCAN cursor per logical queue and master (on
 * Redis Cluster a step visits every master), `SWEEP_COUNT` keys per step and at most one step per `SWEEP_INTERVAL_MS`, so its cost on Redis is
 * bounded whatever the number of tenants. For each marker found, one script deletes it
 * and lists the tenant as ready when its partition has a job waiting (or due at the
 * first delayed job's time), then the queue's waiters are woken. A job put in by hand is
 * therefore seen within one full SCAN cycle of keys ÷ `SWEEP_COUNT` steps, one step per
 * read of the ready index (a worker reads it about once per poll interval): about a
 * second for a few thousand keys, longer in proportion for more. The fleet's own enqueue writes a marker too
 * (BullMQ's add does), so the sweep also re-checks partitions the fleet filled: one
 * cheap script call each, harmless.
 */
import type { Redis } from 'ioredis';
import { globEscape, type KeyLayout } from './cluster/key-layout.js';
import { scanTargets, targetName } from './cluster/scan.js';
import type { PartitionCache } from './partition/partitions.js';
import type { ReadyIndex } from './ready-index.js';

/** Keys examined per SCAN step. */
export const SWEEP_COUNT = 1000;
/** At most one SCAN step per queue per this many milliseconds in one process. */
export const SWEEP_INTERVAL_MS = 500;

const TENANT = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const MARKER = ':marker';

/**
 * Deletes a partition's marker and lists the tenant as ready if a job waits (now) or is
 * delayed (from its due time). Returns 1 when the tenant was listed as ready now.
 */
const SWEEP_MARKER = `
-- KEYS: marker, ready, wait, prioritized, delayed, paused   ARGV: tenant, now
redis.call('DEL', KEYS[1])
if redis.call('LLEN', KEYS[3]) > 0 or redis.call('ZCARD', KEYS[4]) > 0 or redis.call('LLEN', KEYS[6]) > 0 then
  redis.call('ZADD', KEYS[2], 'LT', ARGV[2], ARGV[1])
  return 1
end
local first = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
if first[2] then
  redis.call('ZADD', KEYS[2], 'LT', math.floor(tonumber(first[2]) / 4096), ARGV[1])
end
return 0`;

/** The engine's client with the sweep's script defined on it. */
type SweepRedis = Redis & { fleetSweepMarker(...args: (string | number)[]): Promise<number> };

/** One engine's marker sweeps: a SCAN cursor per logical queue. */
export class MarkerSweep {
  readonly #redis: SweepRedis;
  readonly #layout: KeyLayout;
  readonly #index: ReadyIndex;
  readonly #partitions: PartitionCache;
  readonly #onError: (error: Error) => void;
  readonly #cursors = new Map<string, string>();
  readonly #lastStep = new Map<string, number>();
  readonly #running = new Set<string>();

  constructor(
    redis: Redis,
    layout: KeyLayout,
    index: ReadyIndex,
    partitions: PartitionCache,
    onError: (error: Error) => void,
  ) {
    if (typeof (redis as unknown as Partial<SweepRedis>).fleetSweepMarker !== 'function')
      redis.defineCommand('fleetSweepMarker', { numberOfKeys: 6, lua: SWEEP_MARKER });
    this.#redis = redis as SweepRedis;
    this.#layout = layout;
    this.#index = index;
    this.#partitions = partitions;
    this.#onError = onError;
  }

  /**
   * Starts one SCAN step for `queue` unless one ran within `SWEEP_INTERVAL_MS` or is
   * still running. Never throws and is not awaited by the reader of the ready index:
   * what it finds reaches the workers by the usual wake-up message. Returns `queue`.
   */
  maybeStep(queue: string): string {
    const now = Date.now();
    if (this.#running.has(queue) || now - (this.#lastStep.get(queue) ?? 0) < SWEEP_INTERVAL_MS) return queue;
    this.#lastStep.set(queue, now);
    this.#running.add(queue);
    this.step(queue)
      .catch((error: Error) => {
        // A step still running when the connection is closed fails with it: not news.
        if (this.#redis.status !== 'end' && this.#redis.status !== 'close') this.#onError(error);
      })
      .finally(() => this.#running.delete(queue));
    return queue;
  }

  /** One SCAN step over `queue`'s partitions on every master; resolves to the tenants listed as ready now. */
  async step(queue: string): Promise<string[]> {
    // `{Q` then anything to `}`: the tags of every shard of Q (checked exactly below).
    const pattern = `${globEscape(this.#layout.prefix)}:{${globEscape(queue)}*}:${globEscape(queue)}.*${MARKER}`;
    const found = await Promise.all(
      (await scanTargets(this.#redis)).map(async (node) => {
        const at = `${queue}\u0000${targetName(node)}`;
        const [cursor, keys] = await node.scan(
          this.#cursors.get(at) ?? '0',
          'MATCH',
          pattern,
          'COUNT',
          SWEEP_COUNT,
        );
        this.#cursors.set(at, cursor);
        return keys;
      }),
    );
    const tenants = found
      .flat()
      .filter((key) => key.endsWith(MARKER))
      .map((key) => this.#layout.parsePartitionKey(key))
      .filter((owner) => owner !== null && owner.queue === queue && TENANT.test(owner.tenant))
      .map((owner) => owner!.tenant);
    const now = Date.now();
    const listed = await Promise.all(
      tenants.map(async (tenant) => {
        const keys = this.#partitions.keys(queue, tenant);
        const ready = await this.#redis.fleetSweepMarker(
          `${this.#layout.partitionHead(queue, tenant)}marker`,
          this.#index.readyKey(queue, tenant),
          keys.wait,
          keys.prioritized,
          keys.delayed,
          keys.paused,
          tenant,
          now,
        );
        return ready === 1 ? tenant : null;
      }),
    );
    const ready = listed.filter((tenant): tenant is string => tenant !== null);
    if (ready.length > 0) await this.#index.publish(queue);
    return ready;
  }
}
