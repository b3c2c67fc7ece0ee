/**
 * Redis commands per job, counted without a clock (issue 4's throughput explained):
 * every command any ioredis client of this process sends from the worker's start to the
 * last completion (not while jobs are enqueued, nor at clean-up), per no-op job. Raw BullMQ (one queue, one Worker) against
 * tenant-fleet on BullMQ over 1, 100 and 1,000 tenants, with the default `jobsPerTurn`
 * and with 1, and over 10,000 tenants (two jobs each). Deterministic up to timing (polls, lock renewals), so one run each.
 *
 * `BENCH_JOBS` scales it (20,000 by default, as in bench/throughput.ts).
 */
import { Redis } from 'ioredis';
import { TenantPools } from '../src/tenancy/tenant-pools/tenant-pools.js';
import type { FleetWorkerOptions } from '../src/worker/worker-options.js';
import { benchRegistry, fleetBullmqRun, REDIS_URL, rawBullmqRun } from './support/fleet-setup.js';
import { machine } from './support/harness.js';

const JOBS = Number(process.env.BENCH_JOBS ?? 20_000);
const CONCURRENCY = 50;

/** Counts the commands every ioredis client sends, by name, while `counting` is on. */
class CommandCounter {
  counting = false;
  readonly byName = new Map<string, number>();

  constructor() {
    const send = Redis.prototype.sendCommand;
    const counter = this;
    Redis.prototype.sendCommand = function (this: Redis, command, stream) {
      if (counter.counting) {
        const c = command as unknown as { name: string; args: unknown[] };
        // evalsha's first argument is the script's hash: name it by the script it runs.
        const name = c.name === 'evalsha' ? `script:${scriptNames.get(String(c.args[0])) ?? '?'}` : c.name;
        counter.byName.set(name, (counter.byName.get(name) ?? 0) + 1);
      }
      return send.call(this, command, stream);
    } as typeof send;
  }

  start(): void {
    this.byName.clear();
    this.counting = true;
  }

  stop(): void {
    this.counting = false;
  }

  /** Commands per job by name, and in all, rounded to 2 places. */
  perJob(jobs: number): { total: number; byName: Record<string, number> } {
    const round = (n: number) => Number((n / jobs).toFixed(2));
    // Commands sent less than once per 200 jobs (start-up, clean-up) are left out by name.
    const byName = Object.fromEntries(
      [...this.byName]
        .sort((a, b) => b[1] - a[1])
        .map(([name, n]) => [name, round(n)] as const)
        .filter(([, perJob]) => perJob > 0),
    );
    return { total: round([...this.byName.values()].reduce((a, b) => a + b, 0)), byName };
  }
}

/** sha1 → BullMQ or fleet script name, filled from the scripts ioredis has defined. */
const scriptNames = new Map<string, string>();
function learnScripts(client: Redis): void {
  const scripts = (client as unknown as { scriptsSet?: Record<string, { sha: string }> }).scriptsSet ?? {};
  for (const [name, script] of Object.entries(scripts)) scriptNames.set(script.sha, name);
}

export async function main() {
  const counter = new CommandCounter();
  // Learn script names from any client that defines them as they are first used.
  const define = Redis.prototype.defineCommand;
  Redis.prototype.defineCommand = function (this: Redis, ...args: Parameters<typeof define>) {
    define.apply(this, args);
    learnScripts(this);
  } as typeof define;

  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const { registry, slugs, drop } = await benchRegistry(10_000, 0);
  const pools = await TenantPools.open({ registry });
  const results: Record<string, unknown> = {};
  try {
    const counted = { onStart: () => counter.start(), onFinish: () => counter.stop() };
    await rawBullmqRun(redis, JOBS, CONCURRENCY, async () => {}, counted);
    results.raw_bullmq = counter.perJob(JOBS);
    const scenarios: [string, number, FleetWorkerOptions][] = [
      ['fleet_1_tenant', 1, {}],
      ['fleet_100_tenants', 100, {}],
      ['fleet_1000_tenants', 1000, {}],
      ['fleet_100_tenants_jobsPerTurn_1', 100, { jobsPerTurn: 1 }],
      ['fleet_1000_tenants_jobsPerTurn_1', 1000, { jobsPerTurn: 1 }],
      ['fleet_10000_tenants', 10_000, {}],
    ];
    for (const [name, tenants, options] of scenarios) {
      await fleetBullmqRun(redis, {
        registry,
        pools,
        slugs,
        tenants,
        jobs: JOBS,
        concurrency: CONCURRENCY,
        options: { borrowConnection: false, ...options },
        handler: async () => {},
        ...counted,
      });
      results[name] = counter.perJob(JOBS);
      console.error(name, JSON.stringify(results[name]));
    }
  } finally {
    await pools.close();
    await drop();
    redis.disconnect();
  }
  return { machine: machine(), jobs: JOBS, concurrency: CONCURRENCY, results };
}
