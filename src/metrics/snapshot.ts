/**
 * What every worker process publishes about itself about once a second, and what the
 * dashboard, `/metrics` and the status command read back: counters since the process
 * started (so a reader turns two snapshots into a rate), pool pressure, and who it is.
 */

import type { PrewarmReport } from '../tenancy/tenant-pools/prewarm.js';
import type { TenantPoolsStats } from '../tenancy/tenant-pools/stats.js';

/** Upper bounds (ms) of the duration histograms' buckets; the last bucket is +Inf. */
export const DURATION_BUCKETS_MS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000] as const;

/** A histogram over {@link DURATION_BUCKETS_MS}: `counts[i]` jobs took ≤ bucket i (not cumulative), the last one +Inf. */
export interface DurationHistogram {
  counts: number[];
  sumMs: number;
  count: number;
}

/** Job counters of one queue, or of one tenant in one queue, since the process started. */
export interface JobCounters {
  completed: number;
  /** Jobs that failed for good. */
  failed: number;
  /** Attempts that failed and will run again. */
  retried: number;
  /** Handler durations of completed jobs. */
  durations: DurationHistogram;
  /** Time from enqueue to start (p50 / p99 over recent jobs), ms. */
  waitMs: { p50: number; p99: number };
}

/** One tenant's counters, among the process's top N by activity. */
export interface TenantCounters extends JobCounters {
  queue: string;
  tenant: string;
}

/** Who a process is. Never holds a URL or a secret. */
export interface ProcessIdentity {
  /** Unique per process run: host, pid and a random suffix. */
  id: string;
  host: string;
  pid: number;
  version: string;
  /** Epoch ms. */
  startedAt: number;
}

/** A schedule a process runs, and its last fan-out there (nulls before one). */
export interface ScheduleSnapshot {
  id: string;
  queue: string;
  cron: string;
  /** Epoch ms of the next tick, or null when the pattern has no more. */
  nextTick: number | null;
  /** Epoch ms of the last tick fanned out (here or by another scheduler), or null. */
  lastTick: number | null;
  /** That tick's batch id (`fo.<schedule>.<tick>`), whose progress the engine keeps. */
  batchId: string | null;
  /** Jobs this process enqueued for it; null when another scheduler fanned it out. */
  enqueued: number | null;
}

/** One process's snapshot. */
export interface ProcessSnapshot extends ProcessIdentity {
  /** Epoch ms when it was taken; a reader drops it after three `periodMs`. */
  heartbeatAt: number;
  periodMs: number;
  /** The queues this process works. */
  queues: Record<string, JobCounters & { running: number }>;
  /** Top N tenants by activity since the process started, per queue. */
  tenants: TenantCounters[];
  /** Jobs running now over every worker of the process. */
  running: number;
  /** `pools.stats()`, or null when the process has no pools. */
  pools: TenantPoolsStats | null;
  /** The latest prewarm report, if a prewarm ran. */
  prewarm: PrewarmReport | null;
  /** The schedules this process runs (absent from older versions). */
  schedules?: ScheduleSnapshot[];
}

/** A fresh zero histogram. */
export function emptyHistogram(): DurationHistogram {
  return { counts: new Array<number>(DURATION_BUCKETS_MS.length + 1).fill(0), sumMs: 0, count: 0 };
}

/** Records one duration into `histogram`. */
export function observe(histogram: DurationHistogram, ms: number): void {
  let i = DURATION_BUCKETS_MS.findIndex((bound) => ms <= bound);
  if (i < 0) i = DURATION_BUCKETS_MS.length;
  histogram.counts[i] = (histogram.counts[i] ?? 0) + 1;
  histogram.sumMs += ms;
  histogram.count += 1;
}

/** Adds `from` into `into` (same buckets). */
export function addHistogram(into: DurationHistogram, from: DurationHistogram): void {
  for (let i = 0; i < into.counts.length; i++) into.counts[i] = (into.counts[i] ?? 0) + (from.counts[i] ?? 0);
  into.sumMs += from.sumMs;
  into.count += from.count;
}
