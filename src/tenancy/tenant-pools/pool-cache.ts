/**
 * The cache of database-mode pools, at most `maxCachedPools` of them. A pool with nothing
 * lent and nobody waiting is evictable; when a new tenant needs a place the least recently
 * used evictable pool goes. When every pool is busy the new tenant waits, FIFO, for the
 * first pool to settle.
 */

import type { Org } from '../org.js';
import type { ConnectionPool } from '../pool/connection-pool.js';
import { WaitQueue, type WaitSpec } from '../pool/wait-queue.js';
import type { EvictReason } from './stats.js';

/** A cached pool and the org it was built for (to notice a moved database). */
export interface CacheEntry {
  readonly pool: ConnectionPool;
  readonly org: Org;
}

// An entry with its recency, kept on the entry itself: marking a use on the hit path is
// two writes, with no map or set to update.
interface Cached extends CacheEntry {
  // The tick of the pool's last use (a lookup for a checkout, or settling after its last
  // release), so a pool lent for an hour and released a moment ago counts as recently
  // used. A counter rather than a clock: pools used within one millisecond still have an
  // order.
  used: number;
  // Looked up since it last settled: only then is its settling a use (a pool also settles
  // when an idle connection times out, which uses nothing).
  touched: boolean;
}

/** Database-mode pools by slug, bounded, evicting the least recently used idle one. */
export class PoolCache {
  readonly #max: number;
  readonly #onEvict: (pool: ConnectionPool, reason: EvictReason) => void;
  readonly #entries = new Map<string, Cached>();
  #tick = 0;
  // Pools taken out of the cache that may still have connections lent; close() waits for them.
  readonly #retired = new Set<ConnectionPool>();
  readonly #waiters = new WaitQueue<void>();

  /** @param onEvict told of every pool leaving the cache, before its connections close. */
  constructor(max: number, onEvict: (pool: ConnectionPool, reason: EvictReason) => void) {
    this.#max = max;
    this.#onEvict = onEvict;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Free places right now. */
  get free(): number {
    return Math.max(0, this.#max - this.#entries.size);
  }

  get(slug: string): CacheEntry | undefined {
    return this.#entries.get(slug);
  }

  /** The tenant's cached pool, marked as the most recently used one. */
  use(slug: string): CacheEntry | undefined {
    const entry = this.#entries.get(slug);
    if (entry !== undefined) {
      entry.used = ++this.#tick;
      entry.touched = true;
    }
    return entry;
  }

  has(slug: string): boolean {
    return this.#entries.has(slug);
  }

  /** The cached pools. */
  pools(): ConnectionPool[] {
    return [...this.#entries.values()].map((entry) => entry.pool);
  }

  /** Every pool not yet closed: cached ones and evicted ones still draining. */
  allPools(): ConnectionPool[] {
    return [...this.pools(), ...this.#retired];
  }

  /**
   * Makes sure there is a place, evicting the least recently used idle pool when `evict`
   * allows it. False when the cache is full of busy pools (or eviction is not allowed).
   */
  makeRoom(evict: boolean): boolean {
    if (this.#entries.size < this.#max) return true;
    if (!evict) return false;
    // A linear scan, run only when the cache is full and a new tenant arrives.
    let victim: ConnectionPool | undefined;
    let oldest = Number.POSITIVE_INFINITY;
    for (const { pool, used } of this.#entries.values()) {
      if (pool.settled && used < oldest) {
        victim = pool;
        oldest = used;
      }
    }
    if (!victim) return false;
    this.evict(victim.slug as string, 'lru');
    return true;
  }

  /**
   * Caches a new pool; the caller made room first. Every other caller of the same tenant
   * waiting for a place no longer needs one: they are woken to use this pool (left
   * waiting, they would take the next freed place too, or evict this very pool).
   */
  add(slug: string, pool: ConnectionPool, org: Org): void {
    this.#entries.set(slug, { pool, org, used: ++this.#tick, touched: false });
    for (const waiter of this.#waiters.takeKeyed(slug)) waiter.resolve();
  }

  /** Takes a pool out of the cache and closes it (lent connections close when released). */
  evict(slug: string, reason: EvictReason): void {
    const entry = this.#entries.get(slug);
    if (!entry) return;
    this.#entries.delete(slug);
    const { pool } = entry;
    this.#onEvict(pool, reason);
    this.#retired.add(pool);
    pool
      .close('evict')
      .catch(() => {})
      .finally(() => this.#retired.delete(pool));
    // The place is free now: the oldest tenant waiting for one gets to try for it.
    this.#waiters.shift()?.resolve();
  }

  /**
   * Waits until a place may have come free, or a pool for `slug` was cached (the caller
   * looks again either way), or times out.
   */
  waitForPlace(slug: string, spec: WaitSpec): Promise<void> {
    return this.#waiters.wait(spec, slug);
  }

  /** A pool settled: if a tenant waits for a place, this pool makes it. */
  settled(pool: ConnectionPool): void {
    if (pool.slug === null) return;
    const entry = this.#entries.get(pool.slug);
    if (entry === undefined || entry.pool !== pool) return;
    // Settled after its last release: that release is the pool's latest use.
    if (entry.touched) {
      entry.touched = false;
      entry.used = ++this.#tick;
    }
    if (this.#waiters.length > 0) this.evict(pool.slug, 'lru');
  }

  /** Rejects every tenant waiting for a place. */
  rejectWaiters(err: Error): void {
    this.#waiters.rejectAll(err);
  }
}

/**
 * Closes `pools`: idle connections at once, lent ones when released; after `timeoutMs`
 * whatever is still lent is closed anyway (`onLate` is told first). Resolves once every
 * connection is closed, or at the latest `timeoutMs` after that (the drivers bound each
 * close themselves; this only makes sure close() cannot hang on one that does not).
 */
export async function closePools(
  pools: ConnectionPool[],
  timeoutMs: number,
  onLate: () => void,
): Promise<void> {
  const drained = Promise.all(pools.map((pool) => pool.close('close').catch(() => {})));
  let timer: NodeJS.Timeout | undefined;
  const late = await Promise.race([
    drained.then(() => false),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (!late) return;
  onLate();
  for (const pool of pools) pool.close('close', true).catch(() => {});
  await Promise.race([
    drained,
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    }),
  ]);
  clearTimeout(timer);
}
