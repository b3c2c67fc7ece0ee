/**
 * Throughput of tenant-fleet on BullMQ against raw BullMQ (issue 4):
 *
 * - no-op jobs, 20,000 in all, concurrency 50: one plain BullMQ queue with one Worker,
 *   against a FleetWorker over 1, 100 and 1,000 tenants (jobs spread evenly);
 * - the same with a `select 1` per job on 100 schema-mode tenants: raw BullMQ running it
 *   on a plain pg pool of 20 connections, against the FleetWorker borrowing `ctx.db`
 *   from TenantPools (budget 20, schema pool 20).
 *
 * Each comparison interleaves baseline and subject runs (A B A B …) and reports the
 * median per-pair ratio, because this machine drifts by up to ±50% from minute to
 * minute. Each run enqueues first, then times from the worker's creation (org loading
 * and cap set-up included for the fleet) to the last completion.
 *
 * `BENCH_JOBS` and `BENCH_PAIRS` scale it down for a quick look.
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import { Fleet } from '../src/fleet.js';
import { BullMqBackend } from '../src/queue/bullmq.js';
import { TenantPools } from '../src/tenancy/tenant-pools.js';
import type { FleetWorkerOptions } from '../src/worker/worker-options.js';
import { benchRegistry, deleteKeys, REDIS_URL, rawBullmqRun, unique } from './fleet-setup.js';
import { interleave, machine, type Sample } from './harness.js';

const JOBS = Number(process.env.BENCH_JOBS ?? 20_000);
const PAIRS = Number(process.env.BENCH_PAIRS ?? 5);
const CONCURRENCY = 50;
// Postgres connections for the select-1 comparison, the same for both sides. Well under
// the server's max_connections (100 by default), which the test suites share.
const DB_CONNECTIONS = 20;

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
      (tenants: number, options: FleetWorkerOptions, handler: Parameters<Fleet['worker']>[1]) =>
      async (): Promise<Sample> => {
        const prefix = unique('bench_fleet');
        const backend = new BullMqBackend({ connection: REDIS_URL, prefix });
        const fleet = await Fleet.open({ backend, registry, pools });
        const queue = 'bench';
        for (let start = 0; start < JOBS; start += 1000) {
          const size = Math.min(1000, JOBS - start);
          await fleet.enqueueBulk(
            queue,
            Array.from({ length: size }, (_, k) => ({
              tenant: slugs[(start + k) % tenants]!,
              name: 'noop',
              data: { i: start + k },
            })),
          );
        }
        let done = 0;
        let finish!: () => void;
        const finished = new Promise<void>((resolve) => {
          finish = resolve;
        });
        const started = performance.now();
        const worker = fleet.worker(queue, handler, {
          concurrency: CONCURRENCY,
          perTenantConcurrency: CONCURRENCY,
          ...options,
        });
        // A failed job counts too (and is reported), so a run can never hang on one.
        let failed = 0;
        const settle = () => {
          if (++done === JOBS) finish();
        };
        worker.on('job:completed', settle);
        worker.on('job:failed', () => {
          failed += 1;
          settle();
        });
        await finished;
        const ms = performance.now() - started;
        await fleet.close();
        await deleteKeys(redis, prefix);
        return { ops: JOBS - failed, ms, tenants, failed };
      };

    const noop = async () => {};
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

    const plain = new pg.Pool({ connectionString: registry.databaseUrl, max: DB_CONNECTIONS });
    try {
      results.select1_100_schema_tenants = await report(
        'select1_100_schema_tenants',
        interleave(
          PAIRS,
          () => rawBullmqRun(redis, JOBS, CONCURRENCY, () => plain.query('select 1')),
          fleetRun(100, { borrowConnection: true }, (_job, ctx) => ctx.db!.query('select 1')),
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
