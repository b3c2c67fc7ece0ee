/**
 * What `TenantPools` reports: the `stats()` shape, the counters behind it, the acquire-wait
 * sampler, and the typed event map.
 */

import type { DatabaseKind } from '../drivers/driver.js';
import type { StorageMode } from '../org.js';
import type { BudgetSnapshot } from '../pool/budget.js';
import type { CloseReason } from '../pool/connection-pool.js';
import type { FleetBudgetStats } from '../pool/fleet-budget/fleet-budget.js';

/** One pool as `stats()` reports it. */
export interface PoolStats {
  /** The tenant, or null for the pool shared by every schema-mode tenant. */
  slug: string | null;
  mode: StorageMode;
  kind: DatabaseKind;
  /** Connections open or being opened. */
  open: number;
  inUse: number;
  idle: number;
  /** Callers queued for a connection of this pool. */
  waiting: number;
  /** Epoch milliseconds of the last checkout or release. */
  lastUsedAt: number;
}

/** Totals since `open()`. */
export interface PoolCounters {
  /** Connections lent (acquire, tryAcquire, withTenant). */
  acquires: number;
  /** Connections opened. */
  connects: number;
  /** Connection attempts that failed (refused, timed out, secret not resolvable). */
  connectFailures: number;
  /** Pools closed to make room (LRU), invalidated, or rebuilt after a config change. */
  poolEvictions: number;
  /** Idle connections closed so another pool could have their budget slot. */
  reclaims: number;
  /** Acquires that ended with `AcquireTimeoutError` or `PoolCapacityError`. */
  timeouts: number;
  /** Connections closed and replaced for reaching `maxLifetimeMs`. */
  recycles: number;
}

/** A tenant whose circuit breaker is open: its connects fail fast until `retryAt`. */
export interface OpenBreaker {
  /** The tenant, or null for the shared schema-mode pool (whose circuit all its tenants share). */
  slug: string | null;
  /** Connection attempts that failed in a row. */
  failures: number;
  /** Epoch ms when attempts are let through again. */
  retryAt: number;
}

/** The answer of `TenantPools.stats()`. */
export interface TenantPoolsStats {
  budget: BudgetSnapshot;
  pools: PoolStats[];
  counters: PoolCounters;
  /** Time from `acquire` to a lent connection, over the last {@link WAIT_SAMPLES} acquires. */
  acquireWaitMs: { p50: number; p99: number; max: number };
  /** The circuit breakers open now, the soonest to close first. */
  breakers: OpenBreaker[];
  /** With a fleet budget: per database server, the leases in use fleet-wide, the limit and this process's share. */
  fleet?: FleetBudgetStats;
}

/** The payload naming a pool in events. */
export interface PoolEventInfo {
  /** The tenant, or null for the shared schema-mode pool. */
  slug: string | null;
  mode: StorageMode;
  kind: DatabaseKind;
}

/** Why a pool left the cache. */
export type EvictReason = 'lru' | 'invalidate' | 'config-change';

/** The events of `TenantPools`, each with one payload object. */
export interface TenantPoolsEventMap {
  'pool:create': [PoolEventInfo];
  'pool:evict': [PoolEventInfo & { reason: EvictReason }];
  'connection:open': [PoolEventInfo];
  'connection:close': [PoolEventInfo & { reason: CloseReason }];
  'acquire:timeout': [{ slug: string; timeoutMs: number; error: Error }];
  /**
   * A connection failed outside any caller's hands (killed while idle, prewarm failure).
   * Emitted only when someone listens: an unheard `error` event would crash the process.
   */
  error: [{ slug: string | null; error: Error }];
}

/** How many recent acquire waits the percentiles are computed over. */
export const WAIT_SAMPLES = 4096;

/** A ring buffer of the most recent acquire waits. */
export class WaitSampler {
  readonly #samples = new Float64Array(WAIT_SAMPLES);
  #count = 0;
  #max = 0;

  record(ms: number): void {
    this.#samples[this.#count % WAIT_SAMPLES] = ms;
    this.#count++;
    if (ms > this.#max) this.#max = ms;
  }

  /** p50 and p99 of the recent samples, and the largest wait since `open()`; zeros before any. */
  summary(): { p50: number; p99: number; max: number } {
    const n = Math.min(this.#count, WAIT_SAMPLES);
    if (n === 0) return { p50: 0, p99: 0, max: 0 };
    const sorted = this.#samples.slice(0, n).sort();
    const at = (q: number) => round(sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!);
    return { p50: at(0.5), p99: at(0.99), max: round(this.#max) };
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** Fresh zeroed counters. */
export function zeroCounters(): PoolCounters {
  return {
    acquires: 0,
    connects: 0,
    connectFailures: 0,
    poolEvictions: 0,
    reclaims: 0,
    timeouts: 0,
    recycles: 0,
  };
}
