/**
 * One worker process's metrics, for `tenant-fleet worker --metrics-port`: the same
 * prom-client registry as the dashboard's `/metrics`, read from this process's own
 * snapshot instead of the fleet's. The backlog is left out (it is the fleet's, and a sum
 * over scraped processes would count it once per process).
 */
import type { Registry } from 'prom-client';
import { aggregate } from '../src/metrics/fleet-aggregate.js';
import type { ProcessSnapshot } from '../src/metrics/snapshot.js';
import type { FleetPage } from './fleet-view.js';
import { fleetRegistry, type PageSource } from './prometheus.js';

/** The page of one process, its snapshot taken at each scrape. */
export class ProcessPage implements PageSource {
  readonly #snapshot: () => ProcessSnapshot;
  readonly #engine: string;

  /** `snapshot` is usually `publisher.snapshot.bind(publisher)`. */
  constructor(snapshot: () => ProcessSnapshot, engine: string) {
    this.#snapshot = snapshot;
    this.#engine = engine;
  }

  async latest(): Promise<FleetPage> {
    const now = Date.now();
    const fleet = aggregate([{ ...this.#snapshot(), heartbeatAt: now }], now);
    const top = [...fleet.tenants];
    return {
      ...fleet,
      engine: this.#engine,
      backlog: {},
      top: { backlog: [], throughput: top, failures: [], wait: [] },
      fairness: null,
      throughput: {},
      backlogTenants: [],
      fanOuts: [],
    };
  }
}

/** A registry of one process's metrics; per-tenant series for the top `topTenants` plus `other`. */
export function processRegistry(snapshot: () => ProcessSnapshot, engine: string, topTenants = 10): Registry {
  return fleetRegistry(new ProcessPage(snapshot, engine), topTenants, { backlog: false });
}
