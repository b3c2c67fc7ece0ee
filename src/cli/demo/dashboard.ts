/**
 * The demo's dashboard: its worker's snapshots (in the process, on the memory engine)
 * and the dashboard server on 127.0.0.1. A busy port does not stop the demo: it says so
 * and runs without the page.
 */
import { SnapshotPublisher } from '../../metrics/snapshot-publisher.js';
import type { QueueEngine } from '../../queue/engine.js';
import type { TenantPools } from '../../tenancy/tenant-pools/tenant-pools.js';
import type { FleetWorker } from '../../worker/fleet-worker.js';

/** What the demo closes on its way out. */
export interface DemoDashboard {
  /** The page's address, or null when the server could not start. */
  url: string | null;
  /** Why the server did not start. */
  problem: string | null;
  close(): Promise<void>;
}

/** Publishes `worker`'s snapshots and serves the dashboard on `port` (0: none). */
export async function startDemoDashboard(
  engine: QueueEngine,
  pools: TenantPools,
  worker: FleetWorker,
  queue: string,
  port: number,
): Promise<DemoDashboard> {
  const snapshots = new SnapshotPublisher({ engine, pools });
  snapshots.watch(worker);
  const close = async (server?: { close(): Promise<void> }) => {
    await server?.close();
    await snapshots.close();
  };
  if (port === 0) return { url: null, problem: null, close: () => close() };
  const { startDashboard } = await import('../../../dashboard/index.js');
  try {
    const server = await startDashboard({ engine, port, queues: [queue] });
    return { url: `${server.url}/`, problem: null, close: () => close(server) };
  } catch (error) {
    return { url: null, problem: (error as Error).message, close: () => close() };
  }
}
