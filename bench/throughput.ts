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
 * A 10,000-tenant row (two jobs per tenant) runs when named in `BENCH_ONLY`, e.g.
 * `BENCH_ONLY=noop_10000_tenants npm run bench -- throughput`. Each run reports CPU per
 * job beside its time (bench/support/cpu.ts): this node process and the Redis server (and the
 * Postgres backends for select 1).
 *
 * pg-boss rows (`pgboss_noop_1_tenants`, `pgboss_noop_1000_tenants`): raw pg-boss (one
 * queue, no-op, `BENCH_PGBOSS_LOOPS` loops of `boss.fetch(queue, { batchSize:
 * BENCH_PGBOSS_BATCH })` + `complete`, 4 × 100 by default) against a FleetWorker on the
 * pg-boss engine, with the CPU per job of this process and of the Postgres backends of
 * each side's own connections (bench/pgboss-setup.ts).
 *
 * `BENCH_JOBS` and `BENCH_PAIRS` scale it down for a quick look; `BENCH_ONLY` picks rows.
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import { TenantPools } from '../src/tenancy/tenant-pools/tenant-pools.js';
import type { JobHandler } from '../src/worker/job-context.js';
import type { FleetWorkerOptions } from '../src/worker/worker-options.js';
import { benchRegistry, fleetBullmqRun, REDIS_URL, rawBullmqRun } from './support/fleet-setup.js';
import { interleave, machine, median, type Sample } from './support/harness.js';
import { type CpuSample, fleetPgBossRun, rawPgBossRun } from './support/pgboss-setup.js';

const JOBS = Number(process.env.BENCH_JOBS ?? 20_000);
const PAIRS = Number(process.env.BENCH_PAIRS ?? 5);
const CONCURRENCY = 50;
// Postgres connections for the select-1 comparison, the same for both sides. Well under
// the server's max_connections (100 by default), which the test suites share.
const DB_CONNECTIONS = 20;
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

/** Only the comparisons named in `BENCH_ONLY` (comma-separated), when it is set. */
const only = process.env.BENCH_ONLY?.split(',').map((name) => name.trim());
const wanted = (name: string) => only === undefined || only.includes(name);

export async function main() {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  // 10,000 tenants only when the 10,000-tenant row runs: adding them takes a while.
  const tenantCount = wanted('noop_10000_tenants') ? 10_000 : 1000;
  const { registry, slugs, drop } = await benchRegistry(tenantCount, 100);
  // The same Postgres connections as the raw side's pool (until 2026-12-01 this was 50).
  const pools = await TenantPools.open({
    registry,
    maxConnections: DB_CONNECTIONS,
    schemaPoolMaxConnections: DB_CONNECTIONS,
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
    const compare = async (
      name: string,
      subject: () => Promise<Sample>,
      handler?: () => Promise<unknown>,
    ) => {
      if (!wanted(name)) return;
      results[name] = await report(
        name,
        interleave(PAIRS, () => rawBullmqRun(redis, JOBS, CONCURRENCY, handler), subject),
      );
    };

    const noop = async () => {};
    for (const tenants of [1, 1000]) {
      const name = `pgboss_noop_${tenants}_tenants`;
      if (!wanted(name)) continue;
      const raw: CpuSample[] = [];
      const fleet: CpuSample[] = [];
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
    for (const tenants of [1, 100, 1000])
      await compare(`noop_${tenants}_tenants`, fleetRun(tenants, { borrowConnection: false }, noop));
    // The finest interleaving: every job of its own turn, so a change of tenant per job.
    await compare(
      'noop_1000_tenants_jobsPerTurn_1',
      fleetRun(1000, { borrowConnection: false, jobsPerTurn: 1 }, noop),
    );
    // Two jobs per tenant: the worker's start-up (10,000 orgs loaded) is inside the timing.
    if (tenantCount === 10_000)
      await compare('noop_10000_tenants', fleetRun(10_000, { borrowConnection: false }, noop));

    const plain = new pg.Pool({ connectionString: registry.databaseUrl, max: DB_CONNECTIONS });
    try {
      await compare(
        'select1_100_schema_tenants',
        fleetRun(100, { borrowConnection: true }, async (_job, ctx) => ctx.db!.query('select 1')),
        () => plain.query('select 1'),
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
