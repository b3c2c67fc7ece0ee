/**
 * Noisy neighbour (issue 4): tenant `noisy` enqueues `BENCH_NOISY` jobs (100,000 by
 * default), then 20 quiet tenants enqueue 10 each; no-op jobs, concurrency 8.
 *
 * Baseline: raw BullMQ, every job on one FIFO queue, one Worker. Subject: a FleetWorker
 * on the BullMQ engine. For each run: the quiet jobs' time in queue (from enqueue to the
 * handler starting) p50/p99, and Jain's fairness index among the backlogged tenants,
 * over the completions made while every tenant still had jobs waiting (1 is perfectly
 * even, 1/21 is one tenant taking everything). The interleaved ratio compares how fast
 * the quiet tenants' 200 jobs are done (quiet jobs per second until the last one ends).
 *
 * pg-boss rows, the same backlog: raw pg-boss (one queue, FIFO by creation, 4 loops of
 * `fetch` in batches of 100 + `complete`) against a FleetWorker on the pg-boss engine,
 * with CPU per job (node, and the Postgres backends of each side's connections).
 * `BENCH_ENGINES` (`bullmq,pgboss` by default) picks the rows.
 */
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { Fleet } from '../src/fleet.js';
import { BullMqEngine } from '../src/queue/bullmq/bullmq-engine.js';
import { PgBossEngine } from '../src/queue/pgboss/pgboss-engine.js';
import {
  benchRegistry,
  deleteKeys,
  PG_URL,
  REDIS_URL,
  rawEnqueue,
  redisOptions,
  unique,
} from './support/fleet-setup.js';
import { interleave, machine, median, percentile, type Sample } from './support/harness.js';
import { CpuMeter, rawPgBossRun } from './support/pgboss-setup.js';

const NOISY = Number(process.env.BENCH_NOISY ?? 100_000);
const PAIRS = Number(process.env.BENCH_PAIRS ?? 5);
const QUIET_TENANTS = 20;
const QUIET_JOBS = 10;
const CONCURRENCY = 8;
const ENGINES = (process.env.BENCH_ENGINES ?? 'bullmq,pgboss').split(',');

interface RunStats {
  waits: number[];
  jain: number;
  /** pg-boss rows only: CPU ms per job run (node, Postgres backends). */
  cpu?: { node: number; pg: number };
}

/** Jain's index over the completions made before the first tenant ran out of jobs. */
function jainWhileBacklogged(order: readonly string[], totals: ReadonlyMap<string, number>): number {
  const counts = new Map<string, number>([...totals.keys()].map((t) => [t, 0]));
  for (const tenant of order) {
    const n = counts.get(tenant)! + 1;
    counts.set(tenant, n);
    if (n === totals.get(tenant)) break;
  }
  const xs = [...counts.values()];
  const sum = xs.reduce((a, b) => a + b, 0);
  const squares = xs.reduce((a, b) => a + b * b, 0);
  return (sum * sum) / (xs.length * squares);
}

function totals(): Map<string, number> {
  const map = new Map<string, number>([['noisy', NOISY]]);
  for (let q = 0; q < QUIET_TENANTS; q++) map.set(`quiet${q}`, QUIET_JOBS);
  return map;
}

export async function main() {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  // The registry's tenants t0000… stand for noisy (t0000) and quiet0… (t0001…).
  const { registry, slugs, drop } = await benchRegistry(QUIET_TENANTS + 1, 0);
  const slugOf = (name: string) => (name === 'noisy' ? slugs[0]! : slugs[1 + Number(name.slice(5))]!);
  const nameOf = new Map([...totals().keys()].map((name) => [slugOf(name), name]));
  const runs: { raw: RunStats[]; fleet: RunStats[] } = { raw: [], fleet: [] };

  const rawRun = async (): Promise<Sample> => {
    const prefix = unique('bench_fifo');
    const queue = new Queue('bench', { connection: redis, prefix });
    await rawEnqueue(queue, NOISY, () => ({ tenant: 'noisy' }));
    for (let q = 0; q < QUIET_TENANTS; q++)
      await rawEnqueue(queue, QUIET_JOBS, () => ({ tenant: `quiet${q}` }));
    const order: string[] = [];
    const waits: number[] = [];
    let quietDone = 0;
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const started = performance.now();
    const worker = new Worker(
      'bench',
      async (job) => {
        const tenant = (job.data as { tenant: string }).tenant;
        order.push(tenant);
        if (tenant !== 'noisy') {
          waits.push(Date.now() - job.timestamp);
          if (++quietDone === QUIET_TENANTS * QUIET_JOBS) finish();
        }
      },
      { connection: redisOptions(), prefix, concurrency: CONCURRENCY, removeOnComplete: { count: 100 } },
    );
    await finished;
    const ms = performance.now() - started;
    await worker.close();
    await queue.close();
    await deleteKeys(redis, prefix);
    runs.raw.push({ waits, jain: jainWhileBacklogged(order, totals()) });
    return { ops: QUIET_TENANTS * QUIET_JOBS, ms };
  };

  const fleetRun = async (): Promise<Sample> => {
    const prefix = unique('bench_fair');
    const fleet = await Fleet.open({
      engine: new BullMqEngine({ connection: REDIS_URL, prefix }),
      registry,
    });
    const queue = 'bench';
    for (let start = 0; start < NOISY; start += 1000) {
      const size = Math.min(1000, NOISY - start);
      await fleet.enqueueBulk(
        queue,
        Array.from({ length: size }, () => ({ tenant: slugOf('noisy'), name: 'noop', data: {} })),
      );
    }
    for (let q = 0; q < QUIET_TENANTS; q++) {
      await fleet.enqueueBulk(
        queue,
        Array.from({ length: QUIET_JOBS }, () => ({ tenant: slugOf(`quiet${q}`), name: 'noop', data: {} })),
      );
    }
    const order: string[] = [];
    const waits: number[] = [];
    let quietDone = 0;
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const started = performance.now();
    const worker = fleet.worker(
      queue,
      async (job) => {
        const name = nameOf.get(job.tenant)!;
        order.push(name);
        if (name !== 'noisy') {
          waits.push(Date.now() - job.enqueuedAt);
          if (++quietDone === QUIET_TENANTS * QUIET_JOBS) finish();
        }
      },
      { concurrency: CONCURRENCY, borrowConnection: false },
    );
    await finished;
    const ms = performance.now() - started;
    await worker.close();
    await fleet.close();
    await deleteKeys(redis, prefix);
    runs.fleet.push({ waits, jain: jainWhileBacklogged(order, totals()) });
    return { ops: QUIET_TENANTS * QUIET_JOBS, ms };
  };

  const pgRuns: { raw: RunStats[]; fleet: RunStats[] } = { raw: [], fleet: [] };

  const rawPgBoss = async (): Promise<Sample> => {
    const order: string[] = [];
    const waits: number[] = [];
    let quietDone = 0;
    let finish!: () => void;
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const tags = [...totals()].flatMap(([name, n]) => Array.from({ length: n }, () => name));
    const started = performance.now();
    const sample = await rawPgBossRun({
      jobs: tags.length,
      batchSize: 100,
      loops: 4,
      data: (i) => ({ tenant: tags[i], at: Date.now() }),
      handle: (job) => {
        const { tenant, at } = job.data as { tenant: string; at: number };
        order.push(tenant);
        if (tenant !== 'noisy') {
          waits.push(Date.now() - at);
          if (++quietDone === QUIET_TENANTS * QUIET_JOBS) finish();
        }
      },
      done,
    });
    pgRuns.raw.push({
      waits,
      jain: jainWhileBacklogged(order, totals()),
      cpu: { node: sample.nodeCpuMsPerJob, pg: sample.pgCpuMsPerJob },
    });
    return { ops: QUIET_TENANTS * QUIET_JOBS, ms: performance.now() - started };
  };

  const fleetPgBoss = async (): Promise<Sample> => {
    const schema = unique('bench_fair');
    const app = unique('bench_fair');
    const fleet = await Fleet.open({
      engine: new PgBossEngine({ database: PG_URL, schema, applicationName: app }),
      registry,
    });
    try {
      for (let start = 0; start < NOISY; start += 1000) {
        const size = Math.min(1000, NOISY - start);
        await fleet.enqueueBulk(
          'bench',
          Array.from({ length: size }, () => ({ tenant: slugOf('noisy'), name: 'noop', data: {} })),
        );
      }
      for (let q = 0; q < QUIET_TENANTS; q++) {
        await fleet.enqueueBulk(
          'bench',
          Array.from({ length: QUIET_JOBS }, () => ({ tenant: slugOf(`quiet${q}`), name: 'noop', data: {} })),
        );
      }
      const order: string[] = [];
      const waits: number[] = [];
      let quietDone = 0;
      let finish!: () => void;
      const finished = new Promise<void>((resolve) => {
        finish = resolve;
      });
      const meter = new CpuMeter(app);
      await meter.start();
      const started = performance.now();
      const worker = fleet.worker(
        'bench',
        async (job) => {
          const name = nameOf.get(job.tenant)!;
          order.push(name);
          if (name !== 'noisy') {
            waits.push(Date.now() - job.enqueuedAt);
            if (++quietDone === QUIET_TENANTS * QUIET_JOBS) finish();
          }
        },
        { concurrency: CONCURRENCY, borrowConnection: false },
      );
      await finished;
      const ms = performance.now() - started;
      const cpu = await meter.stop();
      await worker.close();
      pgRuns.fleet.push({
        waits,
        jain: jainWhileBacklogged(order, totals()),
        cpu: { node: cpu.nodeCpuMs / order.length, pg: cpu.pgCpuMs / order.length },
      });
      return { ops: QUIET_TENANTS * QUIET_JOBS, ms };
    } finally {
      await fleet.close();
      const admin = new pg.Client({ connectionString: PG_URL });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.end();
    }
  };

  let comparison: Awaited<ReturnType<typeof interleave>> | null = null;
  let pgComparison: Awaited<ReturnType<typeof interleave>> | null = null;
  try {
    if (ENGINES.includes('bullmq')) comparison = await interleave(PAIRS, rawRun, fleetRun);
    if (ENGINES.includes('pgboss')) pgComparison = await interleave(PAIRS, rawPgBoss, fleetPgBoss);
  } finally {
    await drop();
    redis.disconnect();
  }
  const summary = (list: RunStats[]) => ({
    quietWaitMsP50: list.map((r) => percentile(r.waits, 0.5)),
    quietWaitMsP99: list.map((r) => percentile(r.waits, 0.99)),
    jainIndex: list.map((r) => Number(r.jain.toFixed(3))),
    ...(list[0]?.cpu
      ? {
          nodeCpuMsPerJob: Number(median(list.map((r) => r.cpu!.node)).toFixed(4)),
          pgCpuMsPerJob: Number(median(list.map((r) => r.cpu!.pg)).toFixed(4)),
        }
      : {}),
  });
  return {
    machine: machine(),
    noisyJobs: NOISY,
    quietTenants: QUIET_TENANTS,
    quietJobsEach: QUIET_JOBS,
    concurrency: CONCURRENCY,
    rawFifoBullmq: summary(runs.raw),
    tenantFleet: summary(runs.fleet),
    quietJobsPerSecond: comparison,
    pgboss: pgComparison && {
      rawFifoPgBoss: summary(pgRuns.raw),
      tenantFleet: summary(pgRuns.fleet),
      quietJobsPerSecond: pgComparison,
    },
  };
}
