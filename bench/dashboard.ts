/**
 * The dashboard with 10,000 tenants of which 2,000 have a job waiting, on BullMQ: the
 * time to answer `/`, `/api/fleet`, bull-board's queue list and `/metrics` (from a
 * client on the same machine), the size of each answer (the queue list must not grow
 * with the tenants), and what one uncached read of the fleet page costs.
 */
import { Redis } from 'ioredis';
import { FleetView } from '../dashboard/fleet-view.js';
import { startDashboard } from '../dashboard/index.js';
import { aggregate } from '../src/metrics/fleet-aggregate.js';
import { SnapshotPublisher } from '../src/metrics/snapshot-publisher.js';
import { snapshotStoreFor } from '../src/metrics/store-for-engine.js';
import { BullMqEngine } from '../src/queue/bullmq/bullmq-engine.js';
import { median, percentile } from './support/harness.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const TENANTS = 10_000;
const BACKLOGGED = 2_000;
const ROUNDS = 15;

export async function main(): Promise<unknown> {
  const prefix = `bench-dash-${process.pid}`;
  const engine = new BullMqEngine({ connection: REDIS_URL, prefix });
  const queue = 'reports';
  const tenants = Array.from({ length: TENANTS }, (_, i) => `t${i}`);
  // Every tenant had a job once (its partition's keys exist); 2,000 have one waiting now.
  for (let i = 0; i < TENANTS; i += 1000)
    await engine.enqueueBulk(
      queue,
      tenants.slice(i, i + 1000).map((tenant) => ({ tenant, name: 'n', data: 0 })),
    );
  for (const tenant of tenants.slice(BACKLOGGED)) {
    const job = await engine.fetch(queue, tenant, 'bench', 30_000);
    // Completing with fetchNext finds the partition empty and takes it off the ready index.
    if (job) await engine.complete(job, null, { fetchNext: { workerId: 'bench', lockDurationMs: 30_000 } });
  }
  // A process's snapshot naming its 50 most active tenants, as a worker publishes it.
  const publisher = new SnapshotPublisher({ engine, topTenants: 50 });
  const dashboard = await startDashboard({ engine, port: 0, queues: [queue] });
  const time = async (path: string) => {
    const started = performance.now();
    const answer = await fetch(`${dashboard.url}${path}`);
    const bytes = (await answer.arrayBuffer()).byteLength;
    if (answer.status !== 200) throw new Error(`${path} answered ${answer.status}`);
    return { ms: performance.now() - started, bytes };
  };
  const results: Record<string, { medianMs: number; p95Ms: number; bytes: number }> = {};
  const measure = async (name: string, path: string, before: () => Promise<void>) => {
    const samples: number[] = [];
    let bytes = 0;
    for (let i = 0; i < ROUNDS; i++) {
      await before();
      const sample = await time(path);
      samples.push(sample.ms);
      bytes = sample.bytes;
    }
    results[name] = {
      medianMs: Number(median(samples).toFixed(1)),
      p95Ms: Number(percentile(samples, 0.95).toFixed(1)),
      bytes,
    };
  };
  const none = async () => {};
  try {
    // What a refresh costs (the snapshots, then the ready index and 2,000 partitions
    // counted): a new view each round, so nothing is cached. The routes above answer
    // from the last page while this runs in the background.
    const store = snapshotStoreFor(engine);
    const reads: number[] = [];
    let ready = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const started = performance.now();
      const page = await new FleetView(engine, store, [queue], 10, 2000).read();
      reads.push(performance.now() - started);
      ready = page.backlog[queue]!.readyTenants;
    }
    await store.close();
    results['fleet page read, uncached'] = {
      medianMs: Number(median(reads).toFixed(1)),
      p95Ms: Number(percentile(reads, 0.95).toFixed(1)),
      bytes: 0,
    };
    if (ready !== BACKLOGGED) throw new Error(`expected ${BACKLOGGED} ready tenants, got ${ready}`);
    await time('/api/fleet');
    await measure('GET / (the page)', '/', none);
    await measure('GET /api/fleet', '/api/fleet', none);
    await measure('GET /queues/api/queues (bull-board list)', '/queues/api/queues', none);
    await measure('GET /metrics', '/metrics', none);
    const page = aggregate([publisher.snapshot()]);
    return {
      tenants: TENANTS,
      backlogged: BACKLOGGED,
      rounds: ROUNDS,
      processes: page.processes.length,
      results,
    };
  } finally {
    await dashboard.close();
    await publisher.close();
    await engine.close();
    const redis = new Redis(REDIS_URL);
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 5000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
    await redis.quit();
  }
}
