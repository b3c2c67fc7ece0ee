/**
 * Throughput of tenant-fleet on BullMQ against raw BullMQ (issue 4):
 *
 * - no-op jobs, 20,000 in all, concurrency 50: one plain BullMQ queue with one Worker,
 *   against a FleetWorker over 1, 100 and 1,000 tenants (jobs spread evenly), with the
 *   default `jobsPerTurn` and, at 1,000 tenants, with `jobsPerTurn: 1` as well;
 * - the same with a `select 1` per job on 100 schema-mode tenants: raw BullMQ running it
 *   on a plain pg pool of 20 connections, against the FleetWorker borrowing `ctx.db`
 *   from TenantPools (budget 20, schema pool 20).
 *
 * Each comparison interleaves baseline and subject runs (A B A B …) and reports the
 * median per-pair ratio, because this machine drifts by up to ±50% from minute to
 * minute. Each run enqueues first, then times from the worker's creation (org loading
 * and cap set-up included for the fleet) to the last completion.
 *
 * pg-boss rows: raw pg-boss (one queue, no-op, `BENCH_PGBOSS_LOOPS` loops of
 * `boss.fetch(queue, { batchSize: BENCH_PGBOSS_BATCH })` + `complete`, 4 × 100 by default)
 * against a FleetWorker on the pg-boss engine over 1 and 1,000 tenants, with the CPU per
 * job of this process and of the Postgres backends of each side's connections.
 *
 * `BENCH_JOBS` and `BENCH_PAIRS` scale it down for a quick look; `BENCH_ENGINES`
 * (`bullmq,pgboss` by default) picks the rows.
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import { TenantPools } from '../src/tenancy/tenant-pools/tenant-pools.js';
import type { JobHandler } from '../src/worker/job-context.js';
import type { FleetWorkerOptions } from '../src/worker/worker-options.js';
import { benchRegistry, fleetBullmqRun, REDIS_URL, rawBullmqRun } from './fleet-setup.js';
import { interleave, machine, median, type Sample } from './harness.js';
import { type CpuSample, fleetPgBossRun, rawPgBossRun } from './pgboss-setup.js';

const JOBS = Number(process.env.BENCH_JOBS ?? 20_000);
const PAIRS = Number(process.env.BENCH_PAIRS ?? 5);
const CONCURRENCY = 50;
// Postgres connections for the select-1 comparison, the same for both sides. Well under
// the server's max_connections (100 by default), which the test suites share.
const DB_CONNECTIONS = 20;
const ENGINES = (process.env.BENCH_ENGINES ?? 'bullmq,pgboss').split(',');
const PGBOSS_BATCH = Number(process.env.BENCH_PGBOSS_BATCH ?? 100);
const PGBOSS_LOOPS = Number(process.env.BENCH_PGBOSS_LOOPS ?? 4);

/** The median CPU per job of a side's runs. */
function cpuPerJob(samples: readonly CpuSample[]) {
  return {
    nodeCpuMsPerJob: median(samples.map((s) => s.nodeCpuMsPerJob)),
    pgCpuMsPerJob: median(samples.map((s) => s.pgCpuMsPerJob)),
  };
}

/** Prints each comparison to stderr as it finishes, so a long run shows progress. */
async function report<T>(name: string, comparison: Promise<T>): Promise<T> {
  const result = await comparison;
  console.error(name, JSON.stringify(result));
  return result;
}

export async function main() {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const { registry, slugs, drop } = await benchRegistry(1000, 100);
  const pools = await TenantPools.open({
    registry,
    maxConnections: CONCURRENCY,
    schemaPoolMaxConnections: CONCURRENCY,
  });
  const results: Record<string, unknown> = {};
  try {
    /** One fleet run over the first `tenants` tenants. */
    const fleetRun =
      (tenants: number, options: FleetWorkerOptions, handler: JobHandler) => (): Promise<Sample> =>
        fleetBullmqRun(redis, {
          registry,
          pools,
          slugs,
          tenants,
          jobs: JOBS,
          concurrency: CONCURRENCY,
          options,
          handler,
        });

    const noop = async () => {};
    for (const tenants of ENGINES.includes('pgboss') ? [1, 1000] : []) {
      const raw: CpuSample[] = [];
      const fleet: CpuSample[] = [];
      const name = `pgboss_noop_${tenants}_tenants`;
      const comparison = await interleave(
        PAIRS,
        async () => {
          const sample = await rawPgBossRun({ jobs: JOBS, batchSize: PGBOSS_BATCH, loops: PGBOSS_LOOPS });
          raw.push(sample);
          return sample;
        },
        async () => {
          const sample = await fleetPgBossRun({
            registry,
            pools,
            slugs,
            tenants,
            jobs: JOBS,
            concurrency: CONCURRENCY,
            options: { borrowConnection: false },
            handler: noop,
          });
          fleet.push(sample);
          return sample;
        },
      );
      results[name] = await report(
        name,
        Promise.resolve({ ...comparison, cpu: { rawPgBoss: cpuPerJob(raw), tenantFleet: cpuPerJob(fleet) } }),
      );
    }
    if (!ENGINES.includes('bullmq'))
      return { machine: machine(), jobs: JOBS, concurrency: CONCURRENCY, results };
    for (const tenants of [1, 100, 1000]) {
      results[`noop_${tenants}_tenants`] = await report(
        `noop_${tenants}_tenants`,
        interleave(
          PAIRS,
          () => rawBullmqRun(redis, JOBS, CONCURRENCY),
          fleetRun(tenants, { borrowConnection: false }, noop),
        ),
      );
    }
    // The finest interleaving: every job of its own turn, so a change of tenant per job.
    results.noop_1000_tenants_jobsPerTurn_1 = await report(
      'noop_1000_tenants_jobsPerTurn_1',
      interleave(
        PAIRS,
        () => rawBullmqRun(redis, JOBS, CONCURRENCY),
        fleetRun(1000, { borrowConnection: false, jobsPerTurn: 1 }, noop),
      ),
    );

    const plain = new pg.Pool({ connectionString: registry.databaseUrl, max: DB_CONNECTIONS });
    try {
      results.select1_100_schema_tenants = await report(
        'select1_100_schema_tenants',
        interleave(
          PAIRS,
          () => rawBullmqRun(redis, JOBS, CONCURRENCY, () => plain.query('select 1')),
          fleetRun(100, { borrowConnection: true }, async (_job, ctx) => ctx.db!.query('select 1')),
        ),
      );
    } finally {
      await plain.end();
    }
  } finally {
    await pools.close();
    await drop();
    redis.disconnect();
  }
  return { machine: machine(), jobs: JOBS, concurrency: CONCURRENCY, results };
}
