/**
 * What the fleet page, `/api/fleet` and `/metrics` show: the live processes' snapshots
 * summed, the backlog read from the engine, the throughput history, and the top tenants
 * by backlog, throughput, start delay and failures. Read at most once per
 * `REFRESH_MS` however many tabs and scrapers ask (one read in flight at a time), so
 * the cost on Redis does not grow with viewers.
 */
import { type QueueBacklog, readBacklog, type TenantBacklog } from '../src/metrics/backlog.js';
import {
  aggregate,
  type FleetAggregate,
  liveSnapshots,
  type TenantTotals,
} from '../src/metrics/fleet-aggregate.js';
import type { ScheduleSnapshot } from '../src/metrics/snapshot.js';
import type { SnapshotStore } from '../src/metrics/snapshot-store.js';
import type { BatchProgress, QueueEngine } from '../src/queue/engine.js';
import { ThroughputHistory, type ThroughputPoint } from './throughput-history.js';

/** How old a reading may be before it is read again. */
export const REFRESH_MS = 1000;
/** How old a page `latest()` still answers with while a fresher one is read. */
export const SERVE_STALE_MS = 5000;

/** The page's data. Holds no URL and no secret: snapshots never carry any. */
export interface FleetPage extends FleetAggregate {
  engine: string;
  backlog: Record<string, Omit<QueueBacklog, 'tenants'>>;
  top: {
    backlog: TenantBacklog[];
    throughput: TenantTotals[];
    failures: TenantTotals[];
    wait: TenantTotals[];
  };
  /** Jain's fairness index over the backlogged tenants' throughput (1 = even), null without two such tenants. */
  fairness: number | null;
  throughput: Record<string, ThroughputPoint[]>;
  /** Every tenant with a backlog (for bull-board's registration), most waiting first. */
  backlogTenants: TenantBacklog[];
  /** The scheduler fan-outs: each schedule's last batch and its progress (null before one). */
  fanOuts: (ScheduleSnapshot & { progress: BatchProgress | null })[];
}

/** Jain's index (Σx)² / (n Σx²) over `values`; null under two values or all zero. */
export function jainIndex(values: readonly number[]): number | null {
  if (values.length < 2) return null;
  const sum = values.reduce((a, b) => a + b, 0);
  const squares = values.reduce((a, b) => a + b * b, 0);
  return squares === 0 ? null : (sum * sum) / (values.length * squares);
}

/** Reads and caches the fleet page. */
export class FleetView {
  readonly #engine: QueueEngine;
  readonly #store: SnapshotStore;
  readonly #queues: readonly string[];
  readonly #top: number;
  readonly #backlogTenants: number;
  readonly #history = new ThroughputHistory();
  #page: FleetPage | null = null;
  #reading: Promise<FleetPage> | null = null;

  constructor(
    engine: QueueEngine,
    store: SnapshotStore,
    queues: readonly string[],
    top: number,
    backlogTenants: number,
  ) {
    this.#engine = engine;
    this.#store = store;
    this.#queues = queues;
    this.#top = top;
    this.#backlogTenants = backlogTenants;
  }

  /** The page, read again when older than {@link REFRESH_MS}. */
  read(): Promise<FleetPage> {
    if (this.#page && Date.now() - this.#page.at < REFRESH_MS) return Promise.resolve(this.#page);
    this.#reading ??= this.#read().finally(() => {
      this.#reading = null;
    });
    return this.#reading;
  }

  /**
   * The last page at once while it is younger than {@link SERVE_STALE_MS}, starting a
   * refresh if it is due (for `/api/fleet` and `/metrics`: their server time does not
   * include counting thousands of partitions); the first call waits for a read.
   */
  latest(): Promise<FleetPage> {
    const page = this.#page;
    if (!page || Date.now() - page.at >= SERVE_STALE_MS) return this.read();
    if (Date.now() - page.at >= REFRESH_MS) this.read().catch(() => {});
    return Promise.resolve(page);
  }

  async #read(): Promise<FleetPage> {
    const now = Date.now();
    const live = liveSnapshots(await this.#store.list(), now);
    this.#history.sample(live, now);
    const fleet = aggregate(live, now);
    const queues = [...new Set([...this.#queues, ...Object.keys(fleet.queues)])].sort();
    const backlogs = await Promise.all(queues.map((q) => readBacklog(this.#engine, q, this.#backlogTenants)));
    const backlogTenants = backlogs.flatMap((b) => b.tenants).sort((a, b) => b.waiting - a.waiting);
    const fanOuts = await Promise.all(
      fleet.schedules.map(async (schedule) => ({
        ...schedule,
        progress: schedule.batchId ? await this.#engine.batchProgress(schedule.batchId) : null,
      })),
    );
    const byQueueTenant = new Map(fleet.tenants.map((t) => [`${t.queue}\u0000${t.tenant}`, t]));
    const top = this.#top;
    const page: FleetPage = {
      ...fleet,
      engine: this.#engine.name,
      backlog: Object.fromEntries(backlogs.map(({ tenants: _, ...rest }) => [rest.queue, rest])),
      top: {
        backlog: backlogTenants.filter((t) => t.waiting > 0).slice(0, top),
        throughput: [...fleet.tenants].sort((a, b) => b.completed - a.completed).slice(0, top),
        failures: fleet.tenants
          .filter((t) => t.failed > 0)
          .sort((a, b) => b.failed - a.failed)
          .slice(0, top),
        wait: [...fleet.tenants].sort((a, b) => b.waitMs.p99 - a.waitMs.p99).slice(0, top),
      },
      fairness: jainIndex(
        backlogTenants
          .filter((t) => t.waiting > 0)
          .map((t) => byQueueTenant.get(`${t.queue}\u0000${t.tenant}`)?.completed ?? 0),
      ),
      throughput: this.#history.points(),
      backlogTenants: backlogTenants.filter((t) => t.waiting + t.active + t.failed > 0),
      fanOuts,
    };
    this.#page = page;
    return page;
  }
}
