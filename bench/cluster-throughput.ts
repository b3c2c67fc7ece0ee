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
 * Besides ops/s, each run records CPU per job: this process (`process.cpuUsage`) and
 * Redis (the `used_cpu_user` + `used_cpu_sys` delta of `INFO cpu` on every master of the
 * run's target; the single Redis is shared, so its figure includes whatever else ran).
 *
 * The cluster is `BENCH_CLUSTER_NODES` (comma-separated `host:port` of its masters), else
 * a local three-master cluster started for the run (test/support/redis-cluster.ts) and
 * stopped after. `BENCH_JOBS` and `BENCH_PAIRS` scale it down for a quick look.
 */
import { Redis } from 'ioredis';
import { TenantPools } from '../src/tenancy/tenant-pools/tenant-pools.js';
import { startRedisCluster } from '../test/support/redis-cluster.js';
import { benchRegistry, fleetBullmqRun, REDIS_URL, rawBullmqRun } from './fleet-setup.js';
import { interleave, machine, median, type Sample } from './harness.js';

const JOBS = Number(process.env.BENCH_JOBS ?? 20_000);
const PAIRS = Number(process.env.BENCH_PAIRS ?? 5);
const TENANTS = 1000;
const CONCURRENCY = 50;

/** Total CPU seconds Redis has used, summed over `servers`. */
async function redisCpu(servers: readonly Redis[]): Promise<number> {
  let total = 0;
  for (const server of servers) {
    const info = await server.info('cpu');
    for (const field of ['used_cpu_user', 'used_cpu_sys'])
      total += Number(new RegExp(`^${field}:([0-9.]+)`, 'm').exec(info)?.[1] ?? 0);
  }
  return total;
}

/** Wraps a run to record its CPU per job (µs) in this process and on `servers`. */
function withCpu(
  servers: readonly Redis[],
  cpu: { node: number[]; redis: number[] },
  run: () => Promise<Sample>,
) {
  return async (): Promise<Sample> => {
    const redisBefore = await redisCpu(servers);
    const nodeBefore = process.cpuUsage();
    const sample = await run();
    const node = process.cpuUsage(nodeBefore);
    const redis = (await redisCpu(servers)) - redisBefore;
    cpu.node.push(Math.round((node.user + node.system) / sample.ops));
    cpu.redis.push(Math.round((redis * 1e6) / sample.ops));
    return sample;
  };
}

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
        ...(shards === null ? {} : { connection: { cluster: nodes }, shards }),
      });
    const comparisons = {
      shards3_vs_single_redis: { baseline: fleetRun(null), on: [redis] },
      shards3_vs_shards1: { baseline: fleetRun(1), on: masters },
      shards3_vs_raw_bullmq_cluster: {
        baseline: () => rawBullmqRun(redis, JOBS, CONCURRENCY, async () => {}, {}, nodes),
        on: masters,
      },
    };
    for (const [name, { baseline, on }] of Object.entries(comparisons)) {
      const cpu = { baseline: { node: [], redis: [] }, subject: { node: [], redis: [] } } as Record<
        'baseline' | 'subject',
        { node: number[]; redis: number[] }
      >;
      const comparison = await interleave(
        PAIRS,
        withCpu(on, cpu.baseline, baseline),
        withCpu(masters, cpu.subject, fleetRun(3)),
      );
      const perJob = (side: { node: number[]; redis: number[] }) => ({
        ...side,
        medianNodeUs: median(side.node),
        medianRedisUs: median(side.redis),
      });
      results[name] = {
        ...comparison,
        cpuPerJobUs: { baseline: perJob(cpu.baseline), subject: perJob(cpu.subject) },
      };
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
