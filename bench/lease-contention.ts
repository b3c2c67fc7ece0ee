/**
 * Lease contention among 50 processes (issue 14, for docs/SCALING.md): `PROCESSES`
 * TenantPools, each standing for one worker process with its own Redis connection and
 * `maxConnections: 4`, share a fleet budget of `LIMIT` connections on one Postgres
 * server. Each runs `LOOPS` acquirers that pick one of `TENANTS` database-mode tenants
 * at random, run `select 1` and release, for `SECONDS`. Tenants outnumber what the
 * budget holds, so opening a connection is frequent: leases are taken, idle connections
 * are handed over or asked for, and acquirers wait fleet-wide.
 *
 * A simulation: the 50 "processes" share one node process (and its event loop), so
 * their CPU is this process's. Reports acquires per second, lease operations per second
 * (the Redis commands the budget sent, from Redis's INFO commandstats: script calls,
 * publishes), acquire wait p50/p99/max, and the most connections Postgres saw on the
 * tenant databases (pg_stat_activity every 20 ms), which must not exceed `LIMIT`.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { connect } from '../src/tenancy/drivers/index.js';
import { OrgRegistry } from '../src/tenancy/registry/org-registry.js';
import { TenantPools } from '../src/tenancy/tenant-pools/tenant-pools.js';
import { PG_URL, REDIS_URL } from './support/fleet-setup.js';
import { machine, percentile } from './support/harness.js';

const PROCESSES = Number(process.env.LEASE_PROCESSES ?? 50);
const LIMIT = Number(process.env.LEASE_LIMIT ?? 40);
const TENANTS = Number(process.env.LEASE_TENANTS ?? 60);
const LOOPS = Number(process.env.LEASE_LOOPS ?? 2);
const SECONDS = Number(process.env.LEASE_SECONDS ?? 30);

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/** Script calls and publishes Redis has run so far (the lease traffic). */
async function leaseCommands(redis: Redis): Promise<number> {
  const info = await redis.info('commandstats');
  let calls = 0;
  for (const name of ['evalsha', 'eval', 'publish'])
    calls += Number(new RegExp(`^cmdstat_${name}:calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0);
  return calls;
}

export async function main() {
  const tag = randomBytes(4).toString('hex');
  const admin = await connect(PG_URL);
  const registryDb = `bench_lease_reg_${tag}`;
  await admin.query(`CREATE DATABASE "${registryDb}"`);
  const registry = await OrgRegistry.open(withDatabase(PG_URL, registryDb));
  await registry.migrate();
  const databases: string[] = [];
  for (let i = 0; i < TENANTS; i++) {
    const name = `bench_lease_${tag}_t${i}`;
    await admin.query(`CREATE DATABASE "${name}"`);
    databases.push(name);
    await registry.add({ slug: `t${i}`, storageMode: 'database', databaseUrl: withDatabase(PG_URL, name) });
  }
  const server = `${new URL(PG_URL).hostname}:${new URL(PG_URL).port || 5432}`;
  const prefix = `bench-lease-${tag}`;
  const redis = new Redis(REDIS_URL);
  const processes: TenantPools[] = [];
  for (let p = 0; p < PROCESSES; p++)
    processes.push(
      await TenantPools.open({
        registry,
        maxConnections: 4,
        acquireTimeoutMs: 30_000,
        fleetBudget: { redis: REDIS_URL, perServer: { [server]: LIMIT }, leaseTtlMs: 10_000, prefix },
      }),
    );
  let peak = 0;
  let sampling = true;
  const sampler = (async () => {
    const pattern = `bench_lease_${tag}_t%`;
    while (sampling) {
      const rows = await admin.query(
        'SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname LIKE $1',
        [pattern],
      );
      peak = Math.max(peak, Number(rows[0]?.n ?? 0));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  const waits: number[] = [];
  let failures = 0;
  const leaseBefore = await leaseCommands(redis);
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const end = Date.now() + SECONDS * 1000;
  await Promise.all(
    processes.flatMap((pools) =>
      Array.from({ length: LOOPS }, async () => {
        while (Date.now() < end) {
          const slug = `t${Math.floor(Math.random() * TENANTS)}`;
          const asked = performance.now();
          try {
            const db = await pools.acquire(slug);
            waits.push(performance.now() - asked);
            await db.query('select 1');
            db.release();
          } catch {
            failures += 1;
          }
        }
      }),
    ),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const leaseOps = (await leaseCommands(redis)) - leaseBefore;
  sampling = false;
  await sampler;
  const stats = processes.map((pools) => pools.stats());
  for (const pools of processes) await pools.close();
  await registry.close();
  redis.disconnect();
  for (const name of [...databases, registryDb])
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.close();
  const round = (n: number) => Number(n.toFixed(1));
  return {
    machine: machine(),
    processes: PROCESSES,
    limit: LIMIT,
    tenants: TENANTS,
    acquirers: PROCESSES * LOOPS,
    seconds: round(seconds),
    acquires: waits.length,
    acquiresPerSec: round(waits.length / seconds),
    failures,
    leaseOpsPerSec: round(leaseOps / seconds),
    opens: stats.reduce((sum, s) => sum + s.counters.connects, 0),
    nodeCpuPerAcquireUs: round((cpu.user + cpu.system) / Math.max(1, waits.length)),
    acquireWaitMs: {
      p50: round(percentile(waits, 0.5)),
      p99: round(percentile(waits, 0.99)),
      max: round(Math.max(...waits)),
    },
    serverPeakConnections: peak,
  };
}
