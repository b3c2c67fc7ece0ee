/**
 * The SQL schedule store's one connection on every database kind: several schedules
 * registering and ticking at once queue their statements on it (pg never sees two
 * queries at once on one client, so it prints no deprecation warning), and a connection
 * the server killed (`pg_terminate_backend`, MariaDB's `KILL`) is replaced, so the next
 * ticks run.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet } from '../../src/fleet.js';
import { MemoryEngine } from '../../src/queue/memory/memory-engine.js';
import { Scheduler } from '../../src/scheduler/scheduler.js';
import { SqlScheduleStore } from '../../src/scheduler/sql-state-store.js';
import { connect } from '../../src/tenancy/drivers/index.js';
import { OrgRegistry } from '../../src/tenancy/registry/org-registry.js';
import { type DatabaseCase, mysqlCase, postgresCase, type Store, sqliteCase } from '../support/databases.js';
import { PG_URL, tempDir } from '../support/services.js';

// Every process warning of this test file: pg prints its concurrent-query deprecation once
// per process, so it is watched from the start.
const warnings: string[] = [];
const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
process.on('warning', onWarning);

let dir: string;
let registry: OrgRegistry;
let fleet: Fleet;
const cases: DatabaseCase[] = [postgresCase(), mysqlCase(), sqliteCase()];
const stores: Store[] = [];

beforeAll(async () => {
  dir = tempDir('sql-store-');
  registry = await OrgRegistry.open(`sqlite:${join(dir, 'registry.db')}`, { cacheTtlMs: 0 });
  await registry.migrate();
  for (const slug of ['t-1', 't-2', 't-3']) {
    await registry.add({ slug, storageMode: 'database', databaseUrl: `sqlite:${join(dir, `${slug}.db`)}` });
  }
  fleet = await Fleet.open({ engine: new MemoryEngine(), registry });
});

afterAll(async () => {
  process.off('warning', onWarning);
  await fleet.close();
  await registry.close();
  for (const store of stores) await store.drop();
  for (const engine of cases) await engine.close();
  rmSync(dir, { recursive: true, force: true });
});

const schedule = (id: string) => ({ id, cron: '0 3 * * *', queue: 'reports', name: 'nightly' });
const day = (n: number) => new Date(Date.UTC(2030, 0, n, 3));

async function backendsOf(database: string): Promise<number> {
  const admin = await connect(PG_URL);
  try {
    const rows = await admin.query('SELECT 1 FROM pg_stat_activity WHERE datname = $1', [database]);
    return rows.length;
  } finally {
    await admin.close();
  }
}

describe.each(cases)('SqlScheduleStore on $name', (engine) => {
  it('runs three schedules registering and ticking at once one statement at a time', async () => {
    const db = await engine.createStore();
    stores.push(db);
    const store = new SqlScheduleStore({ url: db.url });
    await using scheduler = new Scheduler(fleet, { store });
    const ids = ['a', 'b', 'c'].map((x) => `${engine.name}-${x}`);
    await Promise.all(ids.map((id) => scheduler.fanOut(schedule(id))));
    const results = await Promise.all(ids.map((id) => scheduler.tick(id, day(2))));
    expect(results.map((r) => r?.enqueued)).toEqual([3, 3, 3]);
    for (const id of ids) expect(await store.lastTick(id)).toEqual(day(2));
    if (engine.name === 'postgres') expect(await backendsOf(new URL(db.url).pathname.slice(1))).toBe(1);
    await store.close();
    expect(warnings.filter((w) => /already executing a query/.test(w))).toEqual([]);
  });

  it('replaces a connection the server killed: the next ticks run', async () => {
    const db = await engine.createStore();
    stores.push(db);
    const store = new SqlScheduleStore({ url: db.url });
    await using scheduler = new Scheduler(fleet, { store });
    const id = `${engine.name}-killed`;
    await scheduler.fanOut(schedule(id));
    expect(await scheduler.tick(id, day(2))).toMatchObject({ enqueued: 3 });
    const errors: Error[] = [];
    scheduler.on('fanout:error', ({ error }) => errors.push(error));
    // SQLite has no server session to kill; the store must keep working all the same.
    expect(await db.killSessions()).toBe(engine.name === 'sqlite' ? 0 : 1);
    for (const n of [3, 4, 5]) expect(await scheduler.tick(id, day(n))).toMatchObject({ enqueued: 3 });
    expect(errors).toEqual([]);
    expect(await store.lastTick(id)).toEqual(day(5));
    if (engine.name === 'postgres') expect(await backendsOf(new URL(db.url).pathname.slice(1))).toBe(1);
    await store.close();
  });
});
