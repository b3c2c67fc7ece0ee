/**
 * Throughput at 1,000 tenants on a Redis Cluster: no-op jobs, concurrency 50, one worker
 * process, interleaved pairs (A B A B …, median of per-pair ratios; see harness.ts):
 *
 * - `shards3_vs_single_redis`: the fleet on the cluster with `shards: 3` against the
 *   fleet on one Redis;
 * - `shards3_vs_shards1`: `shards: 3` against `shards: 1` (one slot, so one master, per queue);
 * - `shards3_vs_raw_bullmq_cluster`: against one plain BullMQ queue and Worker on the same
 *   cluster.
 *
 * Besides ops/s, each run records CPU per job (bench/cpu.ts): this process, and Redis on
 * every master of the run's target (the single Redis is shared, so its figure includes
 * whatever else ran).
 *
 * The cluster is `BENCH_CLUSTER_NODES` (comma-separated `host:port` of its masters), else
 * a local three-master cluster started for the run (test/support/redis-cluster.ts) and
 * stopped after. `BENCH_JOBS` and `BENCH_PAIRS` scale it down for a quick look.
 */
import { Redis } from 'ioredis';
import { TenantPools } from '../src/tenancy/tenant-pools/tenant-pools.js';
import { startRedisCluster } from '../test/support/redis-cluster.js';
import { benchRegistry, fleetBullmqRun, REDIS_URL, rawBullmqRun } from './support/fleet-setup.js';
import { interleave, machine } from './support/harness.js';

const JOBS = Number(process.env.BENCH_JOBS ?? 20_000);
const PAIRS = Number(process.env.BENCH_PAIRS ?? 5);
const TENANTS = 1000;
const CONCURRENCY = 50;

export async function main() {
  const local = process.env.BENCH_CLUSTER_NODES ? null : await startRedisCluster();
  const nodes = (
    process.env.BENCH_CLUSTER_NODES?.split(',') ?? local!.nodes.map((url) => url.slice('redis://'.length))
  )
    .map((address) => address.trim())
    .map((address) => ({
      host: address.slice(0, address.lastIndexOf(':')),
      port: Number(address.slice(address.lastIndexOf(':') + 1)),
    }));
  const masters = nodes.map((node) => new Redis({ ...node, maxRetriesPerRequest: null }));
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const { registry, slugs, drop } = await benchRegistry(TENANTS, 0);
  const pools = await TenantPools.open({ registry, maxConnections: CONCURRENCY });
  const results: Record<string, unknown> = {};
  try {
    const fleetRun = (shards: number | null) => () =>
      fleetBullmqRun(redis, {
        registry,
        pools,
        slugs,
        tenants: TENANTS,
        jobs: JOBS,
        concurrency: CONCURRENCY,
        options: { borrowConnection: false },
        handler: async () => {},
        ...(shards === null ? {} : { connection: { cluster: nodes }, shards, cpuOn: masters }),
      });
    const comparisons = {
      shards3_vs_single_redis: fleetRun(null),
      shards3_vs_shards1: fleetRun(1),
      shards3_vs_raw_bullmq_cluster: () => rawBullmqRun(redis, JOBS, CONCURRENCY, async () => {}, {}, nodes),
    };
    for (const [name, baseline] of Object.entries(comparisons)) {
      results[name] = await interleave(PAIRS, baseline, fleetRun(3));
      console.error(name, JSON.stringify(results[name]));
    }
  } finally {
    await pools.close();
    await drop();
    redis.disconnect();
    for (const master of masters) master.disconnect();
    await local?.stop();
  }
  return {
    machine: machine(),
    jobs: JOBS,
    tenants: TENANTS,
    concurrency: CONCURRENCY,
    masters: nodes.length,
    results,
  };
}
