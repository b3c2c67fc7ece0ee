/**
 * Every job of a worker turn starts from what a fresh checkout gives: a handler that
 * leaves a transaction open or switches `search_path` does not reach the next job of the
 * turn, on any database kind the worker borrows from.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Fleet } from '../../../src/fleet.js';
import { connect } from '../../../src/tenancy/drivers/index.js';
import type { TenantConnection } from '../../../src/tenancy/tenant-pools/tenant-connection.js';
import { TenantPools } from '../../../src/tenancy/tenant-pools/tenant-pools.js';
import { memoryEngine } from '../../queue/engines.js';
import { mysqlDatabase, sqliteFolder } from '../../support/pools-fixture.js';
import { PG_URL, uniqueName, withDatabase } from '../../support/services.js';
import { until } from '../../support/wait.js';
import { type FleetFixture, openFleet, openRegistry, type RegistryFixture } from '../support.js';

/** What one job does: `begin` opens a transaction and leaves it open, `switch` runs `sql`. */
type Step = { v: string; begin?: true; sql?: string };

let reg: RegistryFixture;
let pools: TenantPools;
let fx: FleetFixture;
beforeAll(async () => {
  reg = await openRegistry();
  pools = await TenantPools.open({ registry: reg.registry, maxConnections: 6 });
  fx = await openFleet(memoryEngine, reg.registry, pools);
});
afterAll(async () => {
  await fx?.cleanup();
  await pools?.close();
  await reg?.cleanup();
});

/** Runs `steps` as one tenant's backlog with a single slot and turns of four jobs. */
async function runTurn(fleet: Fleet, queue: string, tenant: string, steps: Step[]): Promise<string[]> {
  await fleet.enqueueBulk(
    queue,
    steps.map((data) => ({ tenant, name: 'step', data })),
  );
  const seen: string[] = [];
  const worker = fleet.worker<Step>(
    queue,
    async (job, ctx) => {
      const db = ctx.db as TenantConnection;
      if (job.data.begin) await db.query('BEGIN');
      if (job.data.sql) await db.query(job.data.sql);
      else await db.query(`insert into items (v) values ('${job.data.v}')`);
      seen.push(job.data.v);
    },
    { concurrency: 1, jobsPerTurn: 4 },
  );
  await until(async () => (await fleet.counts(queue, tenant)).completed === steps.length, 'the whole turn');
  await worker.close();
  return seen;
}

const rows = (tenant: string, table = 'items') =>
  pools.withTenant(tenant, async (db) =>
    (await db.query<{ v: string }>(`select v from ${table} order by v`)).map((row) => row.v),
  );

describe('a worker turn in schema mode', () => {
  let ta: string;
  let tb: string;
  let tbSchema: string;
  beforeAll(async () => {
    [ta, tb] = [...(await reg.addTenants(1, {}, 'ta')), ...(await reg.addTenants(1, {}, 'tb'))] as [
      string,
      string,
    ];
    tbSchema = (await reg.registry.get(tb)).schemaName as string;
    for (const tenant of [ta, tb])
      await pools.withTenant(tenant, (db) => db.query('create table items (v text)'));
  });

  it('does not run the next jobs inside a transaction a job left open', async () => {
    const queue = uniqueName('q');
    const seen = await runTurn(fx.fleet, queue, ta, [
      { v: 'j1', begin: true },
      { v: 'j2' },
      { v: 'j3' },
      { v: 'j4' },
    ]);
    expect(seen).toEqual(['j1', 'j2', 'j3', 'j4']);
    // Job 1's transaction was never committed; jobs 2–4 each committed their own row.
    expect(await rows(ta)).toEqual(['j2', 'j3', 'j4']);
    expect(pools.stats().budget.inUse).toBe(0);
  });

  it('does not let a job that switched search_path send the next job into another tenant’s schema', async () => {
    await pools.withTenant(ta, (db) => db.query('delete from items'));
    const queue = uniqueName('q');
    await runTurn(fx.fleet, queue, ta, [
      { v: 'j1' },
      { v: 'j2' },
      { v: 'j3', sql: `SET search_path TO "${tbSchema}"` },
      { v: 'j4' },
    ]);
    expect(await rows(ta)).toEqual(['j1', 'j2', 'j4']);
    expect(await rows(tb)).toEqual([]);
  });
});

describe('a worker turn in database mode', () => {
  const sqlite = sqliteFolder();
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    sqlite.remove();
  });

  // One database kind per row: a tenant database of its own, with an items table.
  const kinds: { kind: string; database(): Promise<string> }[] = [
    {
      kind: 'postgres',
      async database() {
        const admin = await connect(PG_URL);
        const name = uniqueName('turn_pg');
        await admin.query(`CREATE DATABASE "${name}"`);
        cleanups.push(async () => {
          await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
          await admin.close();
        });
        return withDatabase(PG_URL, name);
      },
    },
    {
      kind: 'mysql',
      async database() {
        const db = await mysqlDatabase();
        cleanups.push(() => db.drop());
        return db.url;
      },
    },
    { kind: 'sqlite', database: async () => sqlite.url(uniqueName('turn')) },
  ];

  it.each(kinds)(
    'does not run the next jobs inside a transaction a job left open ($kind)',
    async ({ database }) => {
      const url = await database();
      const [tenant] = await reg.addTenants(1, { storageMode: 'database', databaseUrl: url }, 'turn-db');
      // The tenant's pool goes before its database is dropped (cleanups run last first).
      cleanups.push(() => pools.invalidate(tenant!));
      await pools.withTenant(tenant!, (db) => db.query('create table items (v varchar(8))'));
      const queue = uniqueName('q');
      await runTurn(fx.fleet, queue, tenant!, [
        { v: 'j1', begin: true },
        { v: 'j2' },
        { v: 'j3' },
        { v: 'j4' },
      ]);
      expect(await rows(tenant!)).toEqual(['j2', 'j3', 'j4']);
      expect(pools.stats().budget.inUse).toBe(0);
    },
  );
});

describe('a worker given another tenant’s job by a faulty engine', () => {
  it('does not run it with the tenant’s connection, and reports the error', async () => {
    const { fleet } = fx;
    const queue = uniqueName('q');
    const [a, b] = await reg.addTenants(2);
    await fleet.enqueueBulk(queue, [
      ...[1, 2, 3, 4].map((data) => ({ tenant: a!, name: 'n', data })),
      { tenant: b!, name: 'n', data: 5 },
    ]);
    // A wrapper engine that answers a fetch for b with a's job.
    const engine = fleet.engine;
    const fetch = engine.fetch.bind(engine);
    engine.fetch = (q, tenant, workerId, lock) => fetch(q, tenant === b ? a! : tenant, workerId, lock);
    const runs: string[] = [];
    const errors: string[] = [];
    const worker = fleet.worker(
      queue,
      async (job, ctx) =>
        void runs.push(`${job.tenant} with ${ctx.tenant.slug}'s connection (${ctx.db?.kind})`),
      { concurrency: 1, jobsPerTurn: 1 },
    );
    worker.on('error', ({ error }) => errors.push(error.message));
    try {
      await until(() => errors.length > 0, 'the faulty answer to be reported');
    } finally {
      await worker.close();
      engine.fetch = fetch;
    }
    for (const run of runs)
      expect(run.startsWith(`${run.split(' ')[0]} with ${run.split(' ')[0]}'s`)).toBe(true);
    expect(errors.some((message) => message.includes(`Expected a job of tenant ${b}, got one of ${a}`))).toBe(
      true,
    );
  });
});
