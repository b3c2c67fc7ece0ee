/**
 * Shared set-up of the pg-boss benchmarks: the raw pg-boss baseline (one queue, no-op
 * handler, batch fetch), a fleet run on the pg-boss engine, and CPU per job on both
 * sides of the wire: this process (`process.cpuUsage()`) and the Postgres backends of
 * the run's connections (found by `application_name` in pg_stat_activity, their
 * utime + stime read from /proc/<pid>/stat, sampled through the run so a backend that
 * closes meanwhile still counts up to its last sample).
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import PgBoss from 'pg-boss';
import { Fleet } from '../../src/fleet.js';
import { PgBossEngine } from '../../src/queue/pgboss/pgboss-engine.js';
import { type FleetRunOptions, PG_URL, unique } from './fleet-setup.js';
import type { Sample } from './harness.js';

/** Clock ticks per second of /proc/<pid>/stat (`getconf CLK_TCK`; 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** CPU milliseconds (user + system) of one process so far; null once it is gone. */
function processCpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at index 2: state …
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

/**
 * Measures the CPU of the Postgres backends whose `application_name` starts with `app`,
 * from `start()` to `stop()`, and this process's CPU over the same span.
 */
export class CpuMeter {
  readonly #admin: pg.Client;
  readonly #app: string;
  readonly #first = new Map<number, number>();
  readonly #last = new Map<number, number>();
  #timer: NodeJS.Timeout | undefined;
  #node: NodeJS.CpuUsage | undefined;

  constructor(app: string) {
    this.#app = app;
    this.#admin = new pg.Client({ connectionString: PG_URL, application_name: 'bench-cpu-meter' });
  }

  async start(): Promise<void> {
    await this.#admin.connect();
    await this.#sample();
    this.#node = process.cpuUsage();
    this.#timer = setInterval(() => void this.#sample().catch(() => {}), 200);
  }

  /** CPU milliseconds: this process, and the run's Postgres backends. */
  async stop(): Promise<{ nodeCpuMs: number; pgCpuMs: number; backends: number }> {
    const node = process.cpuUsage(this.#node);
    clearInterval(this.#timer);
    await this.#sample();
    await this.#admin.end();
    let pgCpuMs = 0;
    for (const [pid, last] of this.#last) pgCpuMs += last - (this.#first.get(pid) ?? 0);
    return { nodeCpuMs: (node.user + node.system) / 1000, pgCpuMs, backends: this.#last.size };
  }

  async #sample(): Promise<void> {
    const { rows } = await this.#admin.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE application_name LIKE $1',
      [`${this.#app}%`],
    );
    const starting = this.#node === undefined;
    for (const { pid } of rows) {
      const ms = processCpuMs(pid);
      if (ms === null) continue;
      // A backend first seen after the start was opened during the run: all its CPU counts.
      if (!this.#first.has(pid)) this.#first.set(pid, starting ? ms : 0);
      this.#last.set(pid, ms);
    }
  }
}

/** What a pg-boss run measured, besides ops and ms. */
export interface CpuSample extends Sample {
  ops: number;
  ms: number;
  nodeCpuMsPerJob: number;
  pgCpuMsPerJob: number;
}

function perJob(ops: number, ms: number, cpu: { nodeCpuMs: number; pgCpuMs: number }): CpuSample {
  return {
    ops,
    ms,
    nodeCpuMsPerJob: Number((cpu.nodeCpuMs / ops).toFixed(4)),
    pgCpuMsPerJob: Number((cpu.pgCpuMs / ops).toFixed(4)),
  };
}

async function dropSchema(schema: string): Promise<void> {
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin.end();
}

/** Options of {@link rawPgBossRun}. */
export interface RawPgBossRun {
  jobs: number;
  /** `boss.fetch(queue, { batchSize })` per round trip. */
  batchSize: number;
  /** Fetch loops running at once. */
  loops: number;
  /** The job's data by index (the fairness bench tags tenants). */
  data?: (i: number) => object;
  /** Called for each fetched job before the batch is completed. */
  handle?: (job: PgBoss.Job<object>) => void;
  /** Resolves the run early (the fairness bench stops once the quiet jobs ran). */
  done?: Promise<void>;
}

/**
 * Raw pg-boss: one queue in a schema of its own, `jobs` no-op jobs inserted first, then
 * `loops` loops of `fetch` + `complete` in batches, timed from the first fetch.
 */
export async function rawPgBossRun(run: RawPgBossRun): Promise<CpuSample> {
  const schema = unique('bench_boss');
  const app = unique('bench_raw');
  const boss = new PgBoss({ connectionString: PG_URL, schema, application_name: app, max: run.loops + 2 });
  boss.on('error', () => {});
  await boss.start();
  try {
    await boss.createQueue('bench');
    for (let start = 0; start < run.jobs; start += 1000) {
      const size = Math.min(1000, run.jobs - start);
      await boss.insert(
        Array.from({ length: size }, (_, k) => ({
          name: 'bench',
          data: run.data?.(start + k) ?? { i: start + k },
        })),
      );
    }
    const meter = new CpuMeter(app);
    await meter.start();
    let stop = false;
    void run.done?.then(() => {
      stop = true;
    });
    let done = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: run.loops }, async () => {
        while (!stop && done < run.jobs) {
          const jobs = await boss.fetch<object>('bench', { batchSize: run.batchSize });
          if (jobs.length === 0) break;
          for (const job of jobs) run.handle?.(job);
          await boss.complete(
            'bench',
            jobs.map((job) => job.id),
          );
          done += jobs.length;
        }
      }),
    );
    const ms = performance.now() - started;
    return perJob(done, ms, await meter.stop());
  } finally {
    await boss.stop({ graceful: false, wait: true, close: true }).catch(() => {});
    await dropSchema(schema);
  }
}

/**
 * tenant-fleet on the pg-boss engine: `jobs` jobs spread evenly over `tenants` tenants,
 * enqueued first; timed from the worker's creation to the last completion.
 */
export async function fleetPgBossRun(run: FleetRunOptions): Promise<CpuSample & { tenants: number }> {
  const schema = unique('bench_fleet');
  const app = unique('bench_fleet');
  const engine = new PgBossEngine({ database: PG_URL, schema, applicationName: app, maxConnections: 20 });
  const fleet = await Fleet.open({ engine, registry: run.registry, pools: run.pools });
  try {
    for (let start = 0; start < run.jobs; start += 1000) {
      const size = Math.min(1000, run.jobs - start);
      await fleet.enqueueBulk(
        'bench',
        Array.from({ length: size }, (_, k) => ({
          tenant: run.slugs[(start + k) % run.tenants]!,
          name: 'noop',
          data: { i: start + k },
        })),
      );
    }
    let settled = 0;
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const meter = new CpuMeter(app);
    await meter.start();
    const started = performance.now();
    const worker = fleet.worker('bench', run.handler, {
      concurrency: run.concurrency,
      perTenantConcurrency: run.concurrency,
      ...run.options,
    });
    const count = () => {
      if (++settled === run.jobs) finish();
    };
    worker.on('job:completed', count);
    worker.on('job:failed', count);
    await finished;
    const ms = performance.now() - started;
    const cpu = await meter.stop();
    await worker.close();
    return { ...perJob(run.jobs, ms, cpu), tenants: run.tenants };
  } finally {
    await fleet.close();
    await dropSchema(schema);
  }
}
