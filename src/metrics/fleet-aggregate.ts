/**
 * The fleet as one: the live processes' snapshots summed. A process whose heartbeat is
 * older than three of its periods is dropped (it died, or cannot reach Redis), so a
 * killed worker leaves the page within about three seconds.
 */
import type { BudgetSnapshot } from '../tenancy/pool/budget.js';
import type { PrewarmReport } from '../tenancy/tenant-pools/prewarm.js';
import type { OpenBreaker, PoolCounters, PoolStats } from '../tenancy/tenant-pools/stats.js';
import {
  addHistogram,
  emptyHistogram,
  type JobCounters,
  type ProcessSnapshot,
  type ScheduleSnapshot,
} from './snapshot.js';

/** A snapshot is stale once its heartbeat is older than this many periods. */
export const STALE_PERIODS = 3;

/** One live process as the dashboard lists it. */
export interface ProcessSummary {
  id: string;
  host: string;
  pid: number;
  version: string;
  startedAt: number;
  heartbeatAgeMs: number;
  running: number;
  queues: string[];
  /** Null when the process has no pools. */
  pools: {
    budget: BudgetSnapshot;
    acquireWaitMs: { p50: number; p99: number; max: number };
    counters: PoolCounters;
  } | null;
  prewarm: PrewarmReport | null;
}

/** Queue totals over the live processes. */
export type QueueTotals = Omit<JobCounters, 'waitMs'> & {
  running: number;
  /** The worst process's p50 / p99 start delay. */
  waitMs: { p50: number; p99: number };
};

/** One tenant's totals over the live processes (among each process's top N). */
export interface TenantTotals {
  queue: string;
  tenant: string;
  completed: number;
  failed: number;
  retried: number;
  waitMs: { p50: number; p99: number };
}

/** A tenant pool of one process. */
export interface PoolRow
  extends Pick<PoolStats, 'slug' | 'mode' | 'kind' | 'open' | 'inUse' | 'idle' | 'waiting'> {
  process: string;
}

/** An open circuit breaker of one process. */
export interface BreakerRow extends OpenBreaker {
  process: string;
}

/** One database server's fleet budget, over the live processes. */
export interface ServerLeaseRow {
  /** `host:port`. */
  server: string;
  limit: number;
  /** Leases the live processes hold, summed (a dead process's lapse within the lease TTL). */
  leases: number;
  /** Callers of the live processes waiting for a lease. */
  waiting: number;
}

/** The whole fleet. */
export interface FleetAggregate {
  /** Epoch ms when it was computed. */
  at: number;
  processes: ProcessSummary[];
  queues: Record<string, QueueTotals>;
  tenants: TenantTotals[];
  /** Every schedule run by a live process, with the latest fan-out any of them saw, by id. */
  schedules: ScheduleSnapshot[];
  pools: {
    /** Summed over the processes that have pools. */
    budget: BudgetSnapshot;
    counters: PoolCounters;
    /** The worst process's acquire-wait percentiles (ms). */
    acquireWaitMs: { p50: number; p99: number; max: number };
    /** Every process's pools, busiest first, at most `maxPoolRows`. */
    rows: PoolRow[];
    /** Open circuit breakers over the processes (a tenant counts once per process). */
    breakersOpen: number;
    /** Those breakers, the soonest to close first, at most `maxPoolRows`. */
    breakers: BreakerRow[];
    /** With a fleet budget: per database server, leases held and the limit. */
    servers: ServerLeaseRow[];
  };
}

function zeroBudget(): BudgetSnapshot {
  return { max: 0, open: 0, inUse: 0, idle: 0, waiting: 0 };
}

/** Only the snapshots whose heartbeat is recent enough. */
export function liveSnapshots(snapshots: readonly ProcessSnapshot[], now = Date.now()): ProcessSnapshot[] {
  return snapshots.filter((s) => now - s.heartbeatAt <= STALE_PERIODS * s.periodMs);
}

/** Sums the live snapshots. */
export function aggregate(
  snapshots: readonly ProcessSnapshot[],
  now = Date.now(),
  maxPoolRows = 200,
): FleetAggregate {
  const live = liveSnapshots(snapshots, now).sort(
    (a, b) => a.startedAt - b.startedAt || a.id.localeCompare(b.id),
  );
  const queues: Record<string, QueueTotals> = {};
  const tenants = new Map<string, TenantTotals>();
  const budget = zeroBudget();
  const counters: PoolCounters = {
    acquires: 0,
    connects: 0,
    connectFailures: 0,
    poolEvictions: 0,
    reclaims: 0,
    timeouts: 0,
    recycles: 0,
  };
  const acquireWaitMs = { p50: 0, p99: 0, max: 0 };
  const rows: PoolRow[] = [];
  const breakers: BreakerRow[] = [];
  const schedules = new Map<string, ScheduleSnapshot>();
  const servers = new Map<string, ServerLeaseRow>();
  for (const s of live) {
    // A process of an older version, or without a scheduler, publishes no schedules.
    for (const schedule of s.schedules ?? []) {
      const seen = schedules.get(schedule.id);
      if (!seen || (schedule.lastTick ?? -1) > (seen.lastTick ?? -1)) schedules.set(schedule.id, schedule);
    }
    for (const [queue, q] of Object.entries(s.queues)) {
      const total = queues[queue] ?? {
        completed: 0,
        failed: 0,
        retried: 0,
        running: 0,
        durations: emptyHistogram(),
        waitMs: { p50: 0, p99: 0 },
      };
      queues[queue] = total;
      total.completed += q.completed;
      total.failed += q.failed;
      total.retried += q.retried;
      total.running += q.running;
      addHistogram(total.durations, q.durations);
      total.waitMs.p50 = Math.max(total.waitMs.p50, q.waitMs.p50);
      total.waitMs.p99 = Math.max(total.waitMs.p99, q.waitMs.p99);
    }
    for (const t of s.tenants) {
      const key = `${t.queue}\u0000${t.tenant}`;
      const total = tenants.get(key) ?? {
        queue: t.queue,
        tenant: t.tenant,
        completed: 0,
        failed: 0,
        retried: 0,
        waitMs: { p50: 0, p99: 0 },
      };
      total.completed += t.completed;
      total.failed += t.failed;
      total.retried += t.retried;
      total.waitMs.p50 = Math.max(total.waitMs.p50, t.waitMs.p50);
      total.waitMs.p99 = Math.max(total.waitMs.p99, t.waitMs.p99);
      tenants.set(key, total);
    }
    if (s.pools) {
      for (const field of Object.keys(budget) as (keyof BudgetSnapshot)[])
        budget[field] += s.pools.budget[field];
      for (const field of Object.keys(counters) as (keyof PoolCounters)[])
        counters[field] += s.pools.counters[field] ?? 0;
      acquireWaitMs.p50 = Math.max(acquireWaitMs.p50, s.pools.acquireWaitMs.p50);
      acquireWaitMs.p99 = Math.max(acquireWaitMs.p99, s.pools.acquireWaitMs.p99);
      acquireWaitMs.max = Math.max(acquireWaitMs.max, s.pools.acquireWaitMs.max);
      // A process of an older version publishes no breakers.
      for (const b of s.pools.breakers ?? []) breakers.push({ process: s.id, ...b });
      for (const f of s.pools.fleet?.servers ?? []) {
        const row = servers.get(f.server) ?? { server: f.server, limit: f.limit, leases: 0, waiting: 0 };
        row.leases += f.mine;
        row.waiting += f.waiting;
        servers.set(f.server, row);
      }
      for (const p of s.pools.pools)
        rows.push({
          process: s.id,
          slug: p.slug,
          mode: p.mode,
          kind: p.kind,
          open: p.open,
          inUse: p.inUse,
          idle: p.idle,
          waiting: p.waiting,
        });
    }
  }
  rows.sort((a, b) => b.inUse + b.waiting - (a.inUse + a.waiting) || b.open - a.open);
  breakers.sort((a, b) => a.retryAt - b.retryAt);
  return {
    at: now,
    processes: live.map((s) => ({
      id: s.id,
      host: s.host,
      pid: s.pid,
      version: s.version,
      startedAt: s.startedAt,
      heartbeatAgeMs: Math.max(0, now - s.heartbeatAt),
      running: s.running,
      queues: Object.keys(s.queues),
      pools: s.pools
        ? { budget: s.pools.budget, acquireWaitMs: s.pools.acquireWaitMs, counters: s.pools.counters }
        : null,
      prewarm: s.prewarm,
    })),
    queues,
    tenants: [...tenants.values()],
    schedules: [...schedules.values()].sort((a, b) => a.id.localeCompare(b.id)),
    pools: {
      budget,
      counters,
      acquireWaitMs,
      rows: rows.slice(0, maxPoolRows),
      breakersOpen: breakers.length,
      breakers: breakers.slice(0, maxPoolRows),
      servers: [...servers.values()].sort((a, b) => a.server.localeCompare(b.server)),
    },
  };
}
