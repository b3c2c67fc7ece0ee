/**
 * TenantPools benchmarks (`npm run bench -- pools`):
 * - schema-hit: the same for 100 schema-mode tenants (every checkout resets the session and
 *   switches `search_path`) with 20 concurrent callers, CPU per op of node and Postgres;
 * - hit: acquire + `select 1` + release through TenantPools vs a plain `pg.Pool` on the
 *   same Postgres database, interleaved A/B, median of per-pair ratios;
 * - churn: 1,000 SQLite-file tenants, Zipf(1.1) access, maxConnections 20, 50 concurrent
 *   acquirers, 200,000 acquires;
 * - memory: heap bytes per cached idle pool with 10,000 tenants;
 * - miss: opening a connection (acquire after the pool was dropped, `select 1`, release)
 *   without and with a fleet budget (a lease taken in Redis and given back per connection),
 *   interleaved A/B on the same Postgres database.
 * Env: FLEET_BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres),
 * FLEET_BENCH_REDIS_URL (default redis://127.0.0.1:6379);
 * POOLS_BENCH=hit runs only the hit-path comparison (`POOLS_BENCH=hit npm run bench -- pools`),
 * POOLS_BENCH=schema-hit only the schema-mode one,
 * POOLS_BENCH=miss only the miss-path one (MISS_OPS connections per sample, default 200;
 * MISS_PAIRS pairs, default 11).
 */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Redis } from 'ioredis';
import pg from 'pg';
import { connect } from '../src/tenancy/drivers/index.js';
import type { Org } from '../src/tenancy/org.js';
import { serverOf } from '../src/tenancy/pool/connector.js';
import { OrgRegistry } from '../src/tenancy/registry/org-registry.js';
import { TenantPools } from '../src/tenancy/tenant-pools/tenant-pools.js';
import { cpuPerOp, readCpu } from './support/cpu.js';
import { benchRegistry } from './support/fleet-setup.js';
import { interleave, machine, percentile, type Sample } from './support/harness.js';
import { random, zipf } from './support/zipf.js';

const PG_URL = process.env.FLEET_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.FLEET_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const round = (n: number, digits = 3) => Number(n.toFixed(digits));
const suffix = () => Math.random().toString(16).slice(2, 10);

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

function org(slug: string, databaseUrl: string): Org {
  return {
    slug,
    storageMode: 'database',
    databaseUrl,
    schemaName: null,
    active: true,
    weight: 1,
    maxConcurrency: null,
    maxConnections: null,
    createdAt: new Date(),
  };
}

export async function hitPath(dir: string) {
  const admin = await connect(PG_URL);
  const database = `bench_pools_${suffix()}`;
  await admin.query(`CREATE DATABASE "${database}"`);
  const url = withDatabase(PG_URL, database);
  const registry = await OrgRegistry.open(`sqlite:${join(dir, 'registry.db')}`);
  try {
    await registry.migrate();
    await registry.add({ slug: 'acme', storageMode: 'database', databaseUrl: url });
    const pools = await TenantPools.open({ registry, maxConnections: 4 });
    const plain = new pg.Pool({ connectionString: url, max: 4 });
    const ops = 2000;
    const viaPools = async (): Promise<Sample> => {
      const start = performance.now();
      for (let i = 0; i < ops; i++) {
        const db = await pools.acquire('acme');
        await db.query('select 1');
        db.release();
      }
      return { ops, ms: performance.now() - start };
    };
    const viaPgPool = async (): Promise<Sample> => {
      const start = performance.now();
      for (let i = 0; i < ops; i++) {
        const client = await plain.connect();
        await client.query('select 1');
        client.release();
      }
      return { ops, ms: performance.now() - start };
    };
    // Warm both: connections open, code paths compiled.
    await viaPgPool();
    await viaPools();
    const comparison = await interleave(11, viaPgPool, viaPools);
    // The checkout alone (acquire + release, no query), in CPU per checkout: by slug, and
    // given the Org (as the worker does), against pg.Pool's connect() + release().
    const checkouts = 20_000;
    const cpuRun = (checkout: () => Promise<{ release(): void }>) => async (): Promise<Sample> => {
      const start = performance.now();
      const cpu = process.cpuUsage();
      for (let i = 0; i < checkouts; i++) (await checkout()).release();
      const used = process.cpuUsage(cpu);
      const perOp = Number(((used.user + used.system) / checkouts).toFixed(2));
      return {
        ops: checkouts,
        ms: performance.now() - start,
        cpu: { node: perOp, redis: 0, postgres: 0, total: perOp },
      };
    };
    const org = await registry.get('acme');
    const pgCheckout = cpuRun(() => plain.connect());
    const checkout = {
      bySlug: await interleave(
        7,
        pgCheckout,
        cpuRun(() => pools.acquire('acme')),
      ),
      byOrg: await interleave(
        7,
        pgCheckout,
        cpuRun(() => pools.acquire(org)),
      ),
    };
    await plain.end();
    await pools.close();
    return {
      database: 'postgres',
      opsPerSample: ops,
      baselineName: 'pg.Pool (max 4)',
      ...comparison,
      checkout,
    };
  } finally {
    await registry.close();
    await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
    await admin.close();
  }
}

/**
 * The hit path in schema mode: 20 concurrent callers each doing acquire + `select 1` +
 * release, going round 100 schema-mode tenants through TenantPools (shared pool of 20:
 * every checkout carries the session reset and `search_path` switch), against the same
 * callers on a plain `pg.Pool` of 20 (no switch). CPU per op: this process and the Postgres
 * backends (bench/support/cpu.ts).
 */
export async function schemaHitPath() {
  const { registry, slugs, drop } = await benchRegistry(100, 100);
  const pools = await TenantPools.open({ registry, maxConnections: 20, schemaPoolMaxConnections: 20 });
  const plain = new pg.Pool({ connectionString: registry.databaseUrl, max: 20 });
  try {
    const orgs = await Promise.all(slugs.map((slug) => registry.get(slug)));
    const ops = 20_000;
    const run = (op: (i: number) => Promise<unknown>) => async (): Promise<Sample> => {
      let next = 0;
      const before = await readCpu([]);
      const start = performance.now();
      const caller = async () => {
        while (next < ops) await op(next++);
      };
      await Promise.all(Array.from({ length: 20 }, caller));
      const ms = performance.now() - start;
      return { ops, ms, cpu: cpuPerOp(before, await readCpu([]), ops) };
    };
    const viaPgPool = run(() => plain.query('select 1'));
    const viaPools = run(async (i) => {
      const db = await pools.acquire(orgs[i % orgs.length]!);
      await db.query('select 1');
      db.release();
    });
    await viaPgPool();
    await viaPools();
    return { baselineName: 'pg.Pool (max 20)', ...(await interleave(9, viaPgPool, viaPools)) };
  } finally {
    await plain.end();
    await pools.close();
    await drop();
  }
}

/**
 * The miss path with and without the fleet budget: each op opens a new connection (the
 * tenant's pool is dropped after every release, so the next acquire builds a pool and
 * connects), runs `select 1` and gives it back; with the budget, a lease is taken before
 * the connect and released once the close completes.
 */
export async function missPath(dir: string) {
  const ops = Number(process.env.MISS_OPS ?? 200);
  const pairs = Number(process.env.MISS_PAIRS ?? 11);
  const admin = await connect(PG_URL);
  const database = `bench_miss_${suffix()}`;
  await admin.query(`CREATE DATABASE "${database}"`);
  const url = withDatabase(PG_URL, database);
  const registry = await OrgRegistry.open(`sqlite:${join(dir, 'miss-registry.db')}`);
  const prefix = `bench-budget-${suffix()}`;
  const redis = new Redis(REDIS_URL);
  try {
    await registry.migrate();
    await registry.add({ slug: 'acme', storageMode: 'database', databaseUrl: url });
    const local = await TenantPools.open({ registry, maxConnections: 4 });
    const fleet = await TenantPools.open({
      registry,
      maxConnections: 4,
      fleetBudget: { redis: REDIS_URL, perServer: { [serverOf(url) as string]: 4 }, prefix },
    });
    const run = (pools: TenantPools) => async (): Promise<Sample> => {
      const start = performance.now();
      for (let i = 0; i < ops; i++) {
        const db = await pools.acquire('acme');
        await db.query('select 1');
        db.release();
        await pools.invalidate('acme');
      }
      return { ops, ms: performance.now() - start };
    };
    await run(local)();
    await run(fleet)();
    const comparison = await interleave(pairs, run(local), run(fleet));
    await local.close();
    await fleet.close();
    return {
      database: 'postgres',
      opsPerSample: ops,
      baselineName: 'TenantPools without fleetBudget',
      subjectName: 'TenantPools with fleetBudget (Redis lease per connection)',
      ...comparison,
    };
  } finally {
    const keys = await redis.keys(`{${prefix}}:*`);
    if (keys.length > 0) await redis.unlink(...keys);
    redis.disconnect();
    await registry.close();
    await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
    await admin.close();
  }
}

export async function churn(dir: string, maxCachedPools: number, total = 200_000) {
  const tenants = 1000;
  const concurrency = 50;
  const orgs = Array.from({ length: tenants }, (_, i) => org(`t${i}`, `sqlite:${join(dir, `t${i}.db`)}`));
  const registry = await OrgRegistry.open(`sqlite:${join(dir, 'churn-registry.db')}`);
  await registry.migrate();
  const pools = await TenantPools.open({ registry, maxConnections: 20, maxCachedPools });
  // Connections established right now, from the events: the peak is checked against 20.
  let open = 0;
  let maxOpen = 0;
  pools.on('connection:open', () => {
    open++;
    if (open > maxOpen) maxOpen = open;
  });
  pools.on('connection:close', () => open--);
  let maxSlots = 0;
  const draw = zipf(tenants, 1.1, random(42));
  const waits = new Float64Array(total);
  let issued = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (issued < total) {
        const n = issued++;
        const t0 = performance.now();
        // Passing the Org skips the registry lookup: this measures the pools alone.
        const db = await pools.acquire(orgs[draw()]!);
        waits[n] = performance.now() - t0;
        await db.query('select 1');
        db.release();
        if ((n & 1023) === 0) maxSlots = Math.max(maxSlots, pools.stats().budget.open);
      }
    }),
  );
  const ms = performance.now() - start;
  const stats = pools.stats();
  await pools.close();
  await registry.close();
  const sorted = Array.from(waits);
  return {
    tenants: `${tenants} SQLite-file tenants (database mode, one file each)`,
    distribution: 'Zipf(1.1), seeded',
    maxConnections: 20,
    maxCachedPools,
    perTenantMaxConnections: 4,
    concurrency,
    acquires: total,
    ms: round(ms, 1),
    acquiresPerSec: round((total / ms) * 1000, 1),
    hitRate: round(1 - stats.counters.connects / total, 4),
    connects: stats.counters.connects,
    connectsPerSec: round((stats.counters.connects / ms) * 1000, 1),
    reclaims: stats.counters.reclaims,
    poolEvictions: stats.counters.poolEvictions,
    acquireWaitMs: { p50: round(percentile(sorted, 0.5)), p99: round(percentile(sorted, 0.99)) },
    maxConnectionsOpen: maxOpen,
    maxBudgetSlotsSampled: maxSlots,
  };
}

// global.gc when node runs with --expose-gc; else the same function obtained by turning
// the flag on at run time (V8 exposes it to contexts created afterwards).
function gcFunction(): { gc: () => void; how: string } {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (existing) return { gc: existing, how: 'global.gc (--expose-gc)' };
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as (() => void) | undefined;
  if (typeof gc === 'function') return { gc, how: "v8.setFlagsFromString('--expose-gc') + vm gc" };
  return { gc: () => {}, how: 'none: heapUsed without a forced GC (approximate)' };
}

export async function memory(dir: string) {
  const tenants = 10_000;
  const { gc, how } = gcFunction();
  const registry = await OrgRegistry.open(`sqlite:${join(dir, 'memory-registry.db')}`);
  await registry.migrate();
  // In-memory SQLite: opening is cheap and leaves no files; the heap is what is measured.
  const orgs = Array.from({ length: tenants }, (_, i) => org(`m${i}`, 'sqlite::memory:'));
  const pools = await TenantPools.open({ registry, maxConnections: 20, maxCachedPools: tenants });
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((resolve) => setImmediate(resolve));
    }
    return process.memoryUsage().heapUsed;
  };
  const before = await settle();
  for (const o of orgs) (await pools.acquire(o)).release();
  const after = await settle();
  const stats = pools.stats();
  const withConnection = stats.pools.filter((p) => p.open > 0).length;
  await pools.close();
  await registry.close();
  return {
    tenants,
    cachedPools: stats.pools.length,
    poolsHoldingAnIdleConnection: withConnection,
    gc: how,
    heapBytesBefore: before,
    heapBytesAfter: after,
    heapBytesPerCachedPool: Math.round((after - before) / stats.pools.length),
    note: 'counts each pool and its cache entry; the Org objects were allocated before the first reading, so they are not included',
  };
}

// What one miss costs on this machine: opening a SQLite tenant file, one query, closing it
// (better-sqlite3 is synchronous, so this time blocks the event loop).
async function sqliteOpenClose(dir: string) {
  const n = 200;
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const conn = await connect(`sqlite:${join(dir, `t${i}.db`)}`);
    await conn.query('select 1');
    await conn.close();
  }
  return { files: n, msEach: round((performance.now() - start) / n) };
}

export async function main() {
  const dir = join(tmpdir(), `tenant-fleet-bench-${suffix()}`);
  try {
    if (process.env.POOLS_BENCH === 'miss') return { machine: machine(), miss: await missPath(dir) };
    if (process.env.POOLS_BENCH === 'schema-hit')
      return { machine: machine(), schemaHit: await schemaHitPath() };
    const hit = await hitPath(dir);
    if (process.env.POOLS_BENCH === 'hit') return { machine: machine(), hit };
    const miss = await missPath(dir);
    // Every tenant's pool may stay cached: the budget of 20 is the only constraint.
    const churnResult = await churn(dir, 1000);
    // The default cache of 64 pools: new tenants also wait for a pool place (fewer acquires).
    const churnDefaultCache = await churn(dir, 64, 50_000);
    const missCost = await sqliteOpenClose(dir);
    const memoryResult = await memory(dir);
    return {
      machine: machine(),
      hit,
      schemaHit: await schemaHitPath(),
      miss,
      churn: churnResult,
      churnDefaultCache,
      sqliteOpenSelectCloseMs: missCost,
      memory: memoryResult,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
