/**
 * Shared set-up of the worker benchmarks: a registry with many tenants on a Postgres
 * database of its own, Redis key clean-up, and the raw BullMQ baseline.
 */
import { randomBytes } from 'node:crypto';
import { Queue, Worker } from 'bullmq';
import { Cluster, type Redis } from 'ioredis';
import { Fleet } from '../../src/fleet.js';
import { BullMqEngine } from '../../src/queue/bullmq/bullmq-engine.js';
import type { BullMqConnection } from '../../src/queue/bullmq/cluster/connection.js';
import { connect } from '../../src/tenancy/drivers/index.js';
import { OrgRegistry } from '../../src/tenancy/registry/org-registry.js';
import type { TenantPools } from '../../src/tenancy/tenant-pools/tenant-pools.js';
import type { JobHandler } from '../../src/worker/job-context.js';
import type { FleetWorkerOptions } from '../../src/worker/worker-options.js';
import { type CpuPerOp, cpuPerOp, readCpu } from './cpu.js';

/** Where the benchmarks find the services: the environment, or the test defaults. */
export const PG_URL = process.env.FLEET_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.FLEET_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export function unique(prefix: string): string {
  return `${prefix}_${randomBytes(4).toString('hex')}`;
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/** A registry on a fresh database with `count` schema-mode tenants `t0000`…; the first `provisioned` get their schema. */
export async function benchRegistry(
  count: number,
  provisioned: number,
): Promise<{ registry: OrgRegistry; slugs: string[]; drop(): Promise<void> }> {
  const name = unique('fleet_bench');
  const admin = await connect(PG_URL);
  await admin.query(`CREATE DATABASE "${name}"`);
  const registry = await OrgRegistry.open(withDatabase(PG_URL, name), { cacheTtlMs: 60_000 });
  await registry.migrate();
  const slugs = Array.from({ length: count }, (_, i) => `t${String(i).padStart(4, '0')}`);
  for (const slug of slugs) await registry.add({ slug });
  for (const slug of slugs.slice(0, provisioned)) await registry.provision(slug);
  return {
    registry,
    slugs,
    async drop() {
      await registry.close();
      await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await admin.close();
    },
  };
}

/** Host and port of {@link REDIS_URL}, for BullMQ classes that open their own connections. */
export function redisOptions(): { host: string; port: number; maxRetriesPerRequest: null } {
  const url = new URL(REDIS_URL);
  return { host: url.hostname, port: Number(url.port || 6379), maxRetriesPerRequest: null };
}

/** Deletes every Redis key under `prefix:`. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
}

/**
 * Counts a run's settled jobs; `finished` resolves at the `count`th. A failed job counts
 * too (and is reported in `failures`), so a run can never hang on one.
 */
function completionTally(count: number) {
  let settled = 0;
  let finish!: () => void;
  const tally = {
    failures: 0,
    finished: new Promise<void>((resolve) => {
      finish = resolve;
    }),
    completed: () => {
      if (++settled === count) finish();
    },
    failed: () => {
      tally.failures += 1;
      tally.completed();
    },
  };
  return tally;
}

/** Adds `count` jobs to one plain BullMQ queue, in bulks of 1,000. */
export async function rawEnqueue(
  queue: Queue,
  count: number,
  data: (i: number) => Record<string, unknown> = (i) => ({ i }),
): Promise<void> {
  for (let start = 0; start < count; start += 1000) {
    const size = Math.min(1000, count - start);
    await queue.addBulk(
      Array.from({ length: size }, (_, k) => ({
        name: 'noop',
        data: data(start + k),
        // The same retention as the fleet engine's default (keepCompleted: 100).
        opts: { removeOnComplete: 100, removeOnFail: 1000 },
      })),
    );
  }
}

/**
 * Raw BullMQ: one queue, one Worker with `concurrency`, `count` jobs enqueued first; the
 * time and the CPU (bench/cpu.ts) run from the Worker's creation (right after `onStart`)
 * to the last completion (right before `onFinish`). With `clusterNodes`, on that Redis
 * Cluster instead of `redis` (a `{…}` prefix, as BullMQ needs there; the CPU read on
 * every master), and obliterated afterwards.
 */
export async function rawBullmqRun(
  redis: Redis,
  count: number,
  concurrency: number,
  handler: () => Promise<unknown> = async () => {},
  hooks: RunHooks = {},
  clusterNodes?: readonly { host: string; port: number }[],
): Promise<{ ops: number; ms: number; failed: number; cpu: CpuPerOp }> {
  const cluster =
    clusterNodes && new Cluster([...clusterNodes], { redisOptions: { maxRetriesPerRequest: null } });
  const prefix = cluster ? `{${unique('bench_raw')}}` : unique('bench_raw');
  const queue = new Queue('bench', { connection: cluster ?? redis, prefix });
  await rawEnqueue(queue, count);
  const tally = completionTally(count);
  // On a cluster, Redis CPU is every master's.
  const cpuOn = cluster ? cluster.nodes('master') : [redis];
  const cpuBefore = await readCpu(cpuOn);
  hooks.onStart?.();
  const started = performance.now();
  const worker = new Worker('bench', handler, {
    connection: cluster ?? redisOptions(),
    prefix,
    concurrency,
    removeOnComplete: { count: 100 },
  });
  worker.on('completed', tally.completed);
  worker.on('failed', tally.failed);
  await tally.finished;
  const ms = performance.now() - started;
  hooks.onFinish?.();
  const cpu = cpuPerOp(cpuBefore, await readCpu(cpuOn), count);
  await worker.close();
  if (cluster) await queue.obliterate({ force: true });
  await queue.close();
  if (cluster) await cluster.quit();
  else await deleteKeys(redis, prefix);
  return { ops: count - tally.failures, ms, failed: tally.failures, cpu };
}

/** Called around the timed part of a run: after enqueueing, and at the last completion. */
export interface RunHooks {
  onStart?: () => void;
  onFinish?: () => void;
}

/** One run of {@link fleetBullmqRun}. */
export interface FleetRunOptions extends RunHooks {
  registry: OrgRegistry;
  pools: TenantPools;
  /** The jobs go round the first `tenants` of these. */
  slugs: readonly string[];
  tenants: number;
  jobs: number;
  concurrency: number;
  options: FleetWorkerOptions;
  handler: JobHandler;
  /** The engine's connection (a Redis Cluster, say) and shards. @default REDIS_URL, 1 shard */
  connection?: BullMqConnection;
  shards?: number;
  /** The Redis servers whose CPU counts (every master of the cluster). @default [redis] */
  cpuOn?: readonly Redis[];
}

/**
 * tenant-fleet on BullMQ: `jobs` jobs spread evenly over `tenants` tenants, enqueued
 * first; the time runs from the worker's creation (org loading and cap set-up included)
 * to the last completion.
 */
export async function fleetBullmqRun(
  redis: Redis,
  run: FleetRunOptions,
): Promise<{ ops: number; ms: number; tenants: number; failed: number; cpu: CpuPerOp }> {
  const prefix = unique('bench_fleet');
  const engine = new BullMqEngine({
    connection: run.connection ?? REDIS_URL,
    prefix,
    shards: run.shards ?? 1,
  });
  const fleet = await Fleet.open({ engine, registry: run.registry, pools: run.pools });
  const queue = 'bench';
  for (let start = 0; start < run.jobs; start += 1000) {
    const size = Math.min(1000, run.jobs - start);
    await fleet.enqueueBulk(
      queue,
      Array.from({ length: size }, (_, k) => ({
        tenant: run.slugs[(start + k) % run.tenants]!,
        name: 'noop',
        data: { i: start + k },
      })),
    );
  }
  const tally = completionTally(run.jobs);
  const cpuOn = run.cpuOn ?? [redis];
  const cpuBefore = await readCpu(cpuOn);
  run.onStart?.();
  const started = performance.now();
  const worker = fleet.worker(queue, run.handler, {
    concurrency: run.concurrency,
    perTenantConcurrency: run.concurrency,
    ...run.options,
  });
  worker.on('job:completed', tally.completed);
  worker.on('job:failed', tally.failed);
  await tally.finished;
  const ms = performance.now() - started;
  run.onFinish?.();
  const cpu = cpuPerOp(cpuBefore, await readCpu(cpuOn), run.jobs);
  // On a cluster the keys are spread over the masters: the engine's own purge finds them.
  if (run.connection !== undefined) await engine.purge(queue);
  await fleet.close();
  if (run.connection === undefined) await deleteKeys(redis, prefix);
  return { ops: run.jobs - tally.failures, ms, tenants: run.tenants, failed: tally.failures, cpu };
}
