/**
 * What publishing snapshots costs a worker: no-op jobs over 100 tenants on BullMQ, a
 * FleetWorker without a SnapshotPublisher (baseline) against one whose events a
 * publisher counts and which writes a snapshot every second (subject), interleaved.
 * `BENCH_JOBS` and `BENCH_PAIRS` scale it.
 */
import { Redis } from 'ioredis';
import { Fleet } from '../src/fleet.js';
import { SnapshotPublisher } from '../src/metrics/snapshot-publisher.js';
import { BullMqEngine } from '../src/queue/bullmq/bullmq-engine.js';
import { TenantPools } from '../src/tenancy/tenant-pools/tenant-pools.js';
import { benchRegistry, deleteKeys, REDIS_URL, unique } from './support/fleet-setup.js';
import { interleave, machine, type Sample } from './support/harness.js';

const JOBS = Number(process.env.BENCH_JOBS ?? 20_000);
const PAIRS = Number(process.env.BENCH_PAIRS ?? 5);
const TENANTS = 100;
const CONCURRENCY = 50;

export async function main() {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const { registry, slugs, drop } = await benchRegistry(TENANTS, 0);
  const pools = await TenantPools.open({ registry, maxConnections: 10 });
  const run = (publish: boolean) => async (): Promise<Sample> => {
    const prefix = unique('bench_publish');
    const engine = new BullMqEngine({ connection: REDIS_URL, prefix });
    const fleet = await Fleet.open({ engine, registry, pools });
    for (let start = 0; start < JOBS; start += 1000)
      await fleet.enqueueBulk(
        'bench',
        Array.from({ length: Math.min(1000, JOBS - start) }, (_, k) => ({
          tenant: slugs[(start + k) % TENANTS]!,
          name: 'noop',
          data: {},
        })),
      );
    let done = 0;
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => {
      finish = resolve;
    });
    // Made before the clock starts, as a worker process makes it once at start-up.
    const publisher = publish ? new SnapshotPublisher({ engine, pools }) : null;
    await publisher?.publish();
    const started = performance.now();
    const worker = fleet.worker('bench', async () => {}, {
      concurrency: CONCURRENCY,
      perTenantConcurrency: CONCURRENCY,
      borrowConnection: false,
    });
    publisher?.watch(worker);
    worker.on('job:completed', () => {
      if (++done === JOBS) finish();
    });
    await finished;
    const ms = performance.now() - started;
    await publisher?.close();
    await fleet.close();
    await deleteKeys(redis, prefix);
    return { ops: JOBS, ms };
  };
  try {
    const comparison = await interleave(PAIRS, run(false), run(true));
    return {
      machine: machine(),
      jobs: JOBS,
      tenants: TENANTS,
      concurrency: CONCURRENCY,
      publishing: comparison,
    };
  } finally {
    await pools.close();
    await drop();
    await redis.quit();
  }
}
