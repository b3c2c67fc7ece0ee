/**
 * `/metrics`: the fleet in Prometheus text, through prom-client's registry and format.
 * Every value comes from the fleet page (the processes' cumulative counters summed), so
 * one scrape costs one page read. Per-tenant series exist only for the top N tenants
 * of each list plus one `tenant="other"` series holding the rest, so the number of
 * series depends on the queues and N, never on the number of tenants.
 *
 * Counters are sums over the live processes: when a process dies its share leaves the
 * sum, which Prometheus's rate() reads as a counter reset, as it does for a restart.
 */
import { Registry } from 'prom-client';
import { DURATION_BUCKETS_MS } from '../src/metrics/snapshot.js';
import type { FleetPage } from './fleet-view.js';

/** Where the metrics read their page: the fleet's {@link FleetView}, or one process's page. */
export interface PageSource {
  latest(): Promise<FleetPage>;
}

/** Options of {@link fleetRegistry}. */
export interface FleetRegistryOptions {
  /**
   * Whether to export the backlog (`fleet_queue_waiting`, `fleet_tenant_waiting`). The
   * backlog is the fleet's, not a process's: one worker's `/metrics` leaves it out, so a
   * sum over the scraped processes does not count it once per process.
   * @default true
   */
  backlog?: boolean;
}

type Labels = Record<string, string>;
interface Sample {
  labels: Labels;
  value: number;
  metricName?: string;
}

/** A metric whose samples are computed from the page at scrape time. */
class PageMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram' | 'summary';
  readonly #view: PageSource;
  readonly #samples: (page: FleetPage) => Sample[];

  constructor(
    view: PageSource,
    name: string,
    type: PageMetric['type'],
    help: string,
    samples: (page: FleetPage) => Sample[],
  ) {
    this.#view = view;
    this.name = name;
    this.type = type;
    this.help = help;
    this.#samples = samples;
  }

  async get() {
    const page = await this.#view.latest();
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      values: this.#samples(page),
      aggregator: 'sum',
    };
  }

  // Read by Registry.registerMetric / resetMetrics; nothing to reset here.
  reset(): void {}
}

/** The top `n` of `rows` by `value` as tenant series, plus `other` = `total` minus them. */
function topWithOther<T extends { queue: string; tenant: string }>(
  rows: readonly T[],
  queue: string,
  total: number,
  n: number,
  value: (row: T) => number,
): Sample[] {
  const top = rows
    .filter((r) => r.queue === queue && value(r) > 0)
    .sort((a, b) => value(b) - value(a))
    .slice(0, n);
  const shown = top.reduce((sum, r) => sum + value(r), 0);
  return [
    ...top.map((r) => ({ labels: { queue, tenant: r.tenant }, value: value(r) })),
    { labels: { queue, tenant: 'other' }, value: Math.max(0, total - shown) },
  ];
}

/** A prom-client registry of the fleet's metrics, read from `view`. */
export function fleetRegistry(
  view: PageSource,
  topTenants: number,
  options: FleetRegistryOptions = {},
): Registry {
  const registry = new Registry();
  const metric = (
    name: string,
    type: PageMetric['type'],
    help: string,
    samples: (p: FleetPage) => Sample[],
  ) => registry.registerMetric(new PageMetric(view, name, type, help, samples) as never);
  const perQueue = (field: 'completed' | 'failed' | 'retried') => (p: FleetPage) =>
    Object.entries(p.queues).map(([queue, q]) => ({ labels: { queue }, value: q[field] }));
  const queueNames = (p: FleetPage) => [...new Set([...Object.keys(p.queues), ...Object.keys(p.backlog)])];

  metric('fleet_jobs_completed_total', 'counter', 'Jobs completed, by queue', perQueue('completed'));
  metric('fleet_jobs_failed_total', 'counter', 'Jobs failed for good, by queue', perQueue('failed'));
  metric('fleet_jobs_retried_total', 'counter', 'Attempts failed and retried, by queue', perQueue('retried'));
  metric('fleet_jobs_running', 'gauge', 'Jobs running now, by queue', (p) =>
    Object.entries(p.queues).map(([queue, q]) => ({ labels: { queue }, value: q.running })),
  );
  metric('fleet_job_duration_seconds', 'histogram', 'Handler duration of completed jobs, by queue', (p) =>
    Object.entries(p.queues).flatMap(([queue, q]) => {
      let cumulative = 0;
      const buckets = [...DURATION_BUCKETS_MS.map((ms) => String(ms / 1000)), '+Inf'].map((le, i) => {
        cumulative += q.durations.counts[i] ?? 0;
        return { labels: { queue, le }, value: cumulative, metricName: 'fleet_job_duration_seconds_bucket' };
      });
      return [
        ...buckets,
        { labels: { queue }, value: q.durations.sumMs / 1000, metricName: 'fleet_job_duration_seconds_sum' },
        { labels: { queue }, value: q.durations.count, metricName: 'fleet_job_duration_seconds_count' },
      ];
    }),
  );
  metric(
    'fleet_tenant_jobs_completed_total',
    'counter',
    'Jobs completed by tenant (top N, then other)',
    (p) =>
      Object.entries(p.queues).flatMap(([queue, q]) =>
        topWithOther(p.tenants, queue, q.completed, topTenants, (t) => t.completed),
      ),
  );
  metric('fleet_tenant_jobs_failed_total', 'counter', 'Jobs failed by tenant (top N, then other)', (p) =>
    Object.entries(p.queues).flatMap(([queue, q]) =>
      topWithOther(p.tenants, queue, q.failed, topTenants, (t) => t.failed),
    ),
  );
  if (options.backlog !== false) {
    metric('fleet_queue_waiting', 'gauge', 'Jobs waiting, by queue', (p) =>
      queueNames(p).map((queue) => ({ labels: { queue }, value: p.backlog[queue]?.waiting ?? 0 })),
    );
    metric('fleet_tenant_waiting', 'gauge', 'Jobs waiting by tenant (top N, then other)', (p) =>
      queueNames(p).flatMap((queue) =>
        topWithOther(p.backlogTenants, queue, p.backlog[queue]?.waiting ?? 0, topTenants, (t) => t.waiting),
      ),
    );
  }
  metric('fleet_processes', 'gauge', 'Worker processes with a live heartbeat', (p) => [
    { labels: {}, value: p.processes.length },
  ]);
  metric('fleet_pool_connections', 'gauge', 'Database connections over the fleet, by state', (p) => [
    { labels: { state: 'open' }, value: p.pools.budget.open },
    { labels: { state: 'in_use' }, value: p.pools.budget.inUse },
    { labels: { state: 'idle' }, value: p.pools.budget.idle },
  ]);
  metric('fleet_pool_budget_max', 'gauge', 'Connection budget summed over the processes', (p) => [
    { labels: {}, value: p.pools.budget.max },
  ]);
  metric('fleet_pool_waiting', 'gauge', 'Requests waiting for a budget slot', (p) => [
    { labels: {}, value: p.pools.budget.waiting },
  ]);
  metric('fleet_server_leases', 'gauge', 'Fleet budget leases held per database server', (p) =>
    (p.pools.servers ?? []).map((s) => ({ labels: { server: s.server }, value: s.leases })),
  );
  metric('fleet_server_lease_limit', 'gauge', 'Fleet budget limit per database server', (p) =>
    (p.pools.servers ?? []).map((s) => ({ labels: { server: s.server }, value: s.limit })),
  );
  // The pools keep recent acquire waits as percentiles, not buckets: a summary per process.
  metric(
    'fleet_pool_acquire_wait_seconds',
    'summary',
    'Acquire wait over recent acquires, per process',
    (p) =>
      p.processes.flatMap((proc) =>
        proc.pools
          ? [
              { labels: { process: proc.id, quantile: '0.5' }, value: proc.pools.acquireWaitMs.p50 / 1000 },
              { labels: { process: proc.id, quantile: '0.99' }, value: proc.pools.acquireWaitMs.p99 / 1000 },
            ]
          : [],
      ),
  );
  metric('fleet_pool_evictions_total', 'counter', 'Pools evicted (LRU, invalidate, config change)', (p) => [
    { labels: {}, value: p.pools.counters.poolEvictions },
  ]);
  metric('fleet_pool_reclaims_total', 'counter', 'Idle connections closed for another pool', (p) => [
    { labels: {}, value: p.pools.counters.reclaims },
  ]);
  metric('fleet_breaker_open', 'gauge', 'Tenant circuit breakers open now (connects fail fast)', (p) => [
    { labels: {}, value: p.pools.breakersOpen },
  ]);
  return registry;
}
