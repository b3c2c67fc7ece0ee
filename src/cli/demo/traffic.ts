/**
 * What the demo runs: the handler (a row in the tenant's own SQLite database per job),
 * the noisy tenant's flood, and the periodic stats line (throughput per tenant, pool
 * budget), counted from the worker's own events.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Fleet } from '../../fleet.js';
import type { TenantPools } from '../../tenancy/tenant-pools/tenant-pools.js';
import type { FleetWorker } from '../../worker/fleet-worker.js';
import type { JobHandler } from '../../worker/job-context.js';
import { DEMO_TABLE, NOISY_TENANT } from './setup.js';

/**
 * The demo's queue: a name of its own, not a fleet's likely `reports`, as the demo may be
 * pointed at a fleet's Postgres (pg-boss schema) and removes its queue's jobs at exit.
 */
export const DEMO_QUEUE = 'tenant-fleet-demo';

/** Writes one row to the tenant's database, after a few milliseconds of "work". */
export const demoHandler: JobHandler = async (job, ctx) => {
  await sleep(2 + Math.floor(Math.random() * 8), undefined, { signal: ctx.signal });
  await ctx.db!.query(`INSERT INTO ${DEMO_TABLE} (job_id, job_name, ran_at) VALUES (?, ?, ?)`, [
    job.id,
    job.name,
    new Date().toISOString(),
  ]);
  return { tenant: job.tenant };
};

/** Gives every tenant a few jobs at once, so each one shows up in the first stats lines. */
export async function enqueueWelcomeJobs(fleet: Fleet, tenants: readonly string[]): Promise<void> {
  for (const tenant of tenants) {
    await fleet.enqueueBulk(
      DEMO_QUEUE,
      [1, 2, 3].map((n) => ({ tenant, name: 'welcome', data: { n } })),
    );
  }
}

/**
 * Keeps the noisy tenant's backlog topped up to about `backlog` jobs, `burst` at a time:
 * a flood the fair worker must not let starve everyone else, who each get one job a
 * second. Resolves when `signal` aborts.
 */
export async function generateTraffic(
  fleet: Fleet,
  tenants: readonly string[],
  signal: AbortSignal,
  backlog = 2000,
  burst = 250,
): Promise<void> {
  let sequence = 0;
  const quiet = tenants.filter((t) => t !== NOISY_TENANT);
  const noisy = tenants.includes(NOISY_TENANT);
  for (let round = 0; !signal.aborted; round++) {
    try {
      if (round % 4 === 0 && quiet.length > 0) {
        await fleet.enqueueBulk(
          DEMO_QUEUE,
          quiet.map((tenant) => ({ tenant, name: 'trickle', data: { round } })),
        );
      }
      if (noisy && (await fleet.counts(DEMO_QUEUE, NOISY_TENANT)).waiting < backlog) {
        const jobs = Array.from({ length: burst }, () => ({
          tenant: NOISY_TENANT,
          name: 'flood',
          data: { n: sequence++ },
        }));
        await fleet.enqueueBulk(DEMO_QUEUE, jobs);
      }
    } catch (err) {
      if (signal.aborted) return;
      process.stderr.write(`demo traffic: ${(err as Error).message}\n`);
    }
    await sleep(250, undefined, { signal }).catch(() => undefined);
  }
}

/** Counts completions per tenant and prints the stats line. */
export class DemoStats {
  readonly #total = new Map<string, number>();
  #window = new Map<string, number>();
  #windowStart = Date.now();
  #failed = 0;
  readonly #tenants: readonly string[];
  #announced = false;

  constructor(worker: FleetWorker, tenants: readonly string[]) {
    this.#tenants = tenants;
    worker.on('job:completed', ({ job }) => {
      this.#total.set(job.tenant, (this.#total.get(job.tenant) ?? 0) + 1);
      this.#window.set(job.tenant, (this.#window.get(job.tenant) ?? 0) + 1);
    });
    worker.on('job:failed', () => {
      this.#failed++;
    });
  }

  /** Tenants that have completed at least one job since the demo started. */
  served(): number {
    return this.#tenants.filter((t) => (this.#total.get(t) ?? 0) > 0).length;
  }

  /** The stats line for the window since the last call, then a new window. */
  line(pools: TenantPools): string {
    const seconds = Math.max(0.001, (Date.now() - this.#windowStart) / 1000);
    const window = this.#window;
    this.#window = new Map();
    this.#windowStart = Date.now();
    const rate = (tenant: string) => (window.get(tenant) ?? 0) / seconds;
    const total = [...window.values()].reduce((a, b) => a + b, 0) / seconds;
    const quiet = this.#tenants.filter((t) => t !== NOISY_TENANT);
    const quietRates = quiet.map(rate);
    const min = quietRates.length > 0 ? Math.min(...quietRates) : 0;
    const { budget } = pools.stats();
    // One terminal line (under 120 columns at demo rates): fairness and the budget, no more.
    return [
      `[stats] ${total.toFixed(0)} jobs/s: ${NOISY_TENANT} ${rate(NOISY_TENANT).toFixed(0)}, ${quiet.length} others ${quietRates.reduce((a, b) => a + b, 0).toFixed(0)} (min ${min.toFixed(1)})`,
      `${this.served()}/${this.#tenants.length} served, ${this.#failed} failed`,
      `pool ${budget.open}/${budget.max} open, ${budget.inUse} busy, ${budget.waiting} waiting`,
    ].join(' | ');
  }

  /** True the first time every tenant has been served (to print it once). */
  allServedOnce(): boolean {
    if (this.#announced || this.served() < this.#tenants.length) return false;
    this.#announced = true;
    return true;
  }
}
