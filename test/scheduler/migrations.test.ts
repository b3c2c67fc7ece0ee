/**
 * Tenant migrations over 50 tenants of every mode and engine: Postgres schemas on the
 * registry database, Postgres databases, MySQL databases and SQLite files. One job per
 * tenant with a connection from TenantPools; versions recorded per tenant; a rerun
 * applies only what is new; one tenant whose migration fails is reported and isolated.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet } from '../../src/fleet.js';
import { MemoryEngine } from '../../src/queue/memory/memory-engine.js';
import { loadMigrations } from '../../src/scheduler/migration-files.js';
import { migrateTenants } from '../../src/scheduler/tenant-migrations.js';
import { OrgRegistry } from '../../src/tenancy/registry/org-registry.js';
import { ChainSecretsResolver } from '../../src/tenancy/secrets.js';
import { TenantPools } from '../../src/tenancy/tenant-pools/tenant-pools.js';
import { type DatabaseCase, mysqlCase, postgresCase, type Store, sqliteCase } from '../support/databases.js';
import { tempDir, uniqueName } from '../support/services.js';

const pg = postgresCase();
const mysql = mysqlCase();
const sqlite = sqliteCase();
let store: Store;
let registry: OrgRegistry;
let pools: TenantPools;
let fleet: Fleet;
let dir: string;
const databases: Array<{ engine: DatabaseCase; name: string }> = [];
const tenants: string[] = [];
let failing: string;

// Portable SQL: the same files run on Postgres, MySQL and SQLite. The first has two
// statements, so it goes through `raw.exec`.
const FILES: Record<string, string> = {
  '001_create_reports.sql':
    "CREATE TABLE reports (id INTEGER PRIMARY KEY, title VARCHAR(100) NOT NULL);\nINSERT INTO reports (id, title) VALUES (1, 'first');\n",
  '002_index_titles.sql': 'CREATE INDEX reports_title ON reports (title);\n',
};
const LATER = { '003_add_summary.sql': 'ALTER TABLE reports ADD COLUMN summary VARCHAR(200);\n' };

beforeAll(async () => {
  store = await pg.createStore();
  registry = await OrgRegistry.open(store.url, { cacheTtlMs: 0 });
  await registry.migrate();
  const base = uniqueName('mig').replaceAll('_', '-');
  const add = async (slug: string, engine?: DatabaseCase) => {
    if (engine) {
      const name = `${slug.replaceAll('-', '_')}`;
      databases.push({ engine, name });
      await registry.add({ slug, storageMode: 'database', databaseUrl: engine.tenantUrl(name) });
    } else {
      await registry.add({ slug });
    }
    await registry.provision(slug);
    tenants.push(slug);
  };
  for (let i = 0; i < 20; i++) await add(`${base}-s${i}`);
  for (let i = 0; i < 10; i++) await add(`${base}-p${i}`, pg);
  for (let i = 0; i < 10; i++) await add(`${base}-m${i}`, mysql);
  for (let i = 0; i < 10; i++) await add(`${base}-l${i}`, sqlite);
  pools = await TenantPools.open({ registry, maxConnections: 12 });
  fleet = await Fleet.open({ engine: new MemoryEngine(), registry, pools });

  // One schema-mode tenant already has an index called reports_title: its 002 fails.
  failing = `${base}-s7`;
  await pools.withTenant(failing, (db) =>
    db.raw.exec('CREATE TABLE other (title VARCHAR(10)); CREATE INDEX reports_title ON other (title);'),
  );

  dir = tempDir('migrations-');
  for (const [file, sql] of Object.entries(FILES)) writeFileSync(join(dir, file), sql);
});

afterAll(async () => {
  await fleet?.close();
  await pools?.close();
  await registry?.close();
  for (const { engine, name } of databases) await engine.dropTenant(name).catch(() => {});
  await store?.drop();
  await Promise.all([pg.close(), mysql.close(), sqlite.close()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const versionsOf = (slug: string) =>
  pools.withTenant(slug, async (db) =>
    (await db.query<{ version: unknown }>('SELECT version FROM fleet_migrations ORDER BY version')).map((r) =>
      Number(r.version),
    ),
  );
const reportRows = (slug: string) =>
  pools.withTenant(slug, async (db) => Number((await db.query('SELECT COUNT(*) AS n FROM reports'))[0]!.n));

describe('migrate over 50 tenants of mixed modes and engines', () => {
  it('applies every file to every tenant, one job each, and reports the failing tenant apart', async () => {
    const progress: number[] = [];
    const report = await migrateTenants(fleet, {
      dir,
      concurrency: 6,
      onProgress: (p) => progress.push(p.completed + p.failed),
    });
    expect(tenants).toHaveLength(50);
    expect(report.versions).toEqual([1, 2]);
    expect(report.progress).toEqual({ total: 50, completed: 49, failed: 1, pending: 0 });
    expect(report.migrated.map((m) => m.tenant).sort()).toEqual(tenants.filter((t) => t !== failing).sort());
    expect(report.migrated.every((m) => m.applied.join() === '1,2')).toBe(true);
    expect(report.failed).toHaveLength(1);
    expect(report.failed[0]).toMatchObject({ tenant: failing, version: 2 });
    expect(report.failed[0]!.error).toMatch(/reports_title/);
    // Progress was reported along the way and never went backwards.
    expect(progress.at(-1)).toBe(50);
    expect([...progress].sort((a, b) => a - b)).toEqual(progress);

    for (const slug of tenants) {
      expect(await versionsOf(slug)).toEqual(slug === failing ? [1] : [1, 2]);
      expect(await reportRows(slug)).toBe(1);
    }
  });

  it('a rerun applies nothing already applied', async () => {
    const report = await migrateTenants(fleet, { dir, concurrency: 6 });
    expect(report.migrated).toEqual([]);
    expect(report.upToDate).toHaveLength(49);
    expect(report.failed.map((f) => f.tenant)).toEqual([failing]);
    // The INSERT of 001 did not run again anywhere.
    for (const slug of tenants) expect(await reportRows(slug)).toBe(1);
  });

  it('after the fix and a new file, each tenant gets exactly what it lacks', async () => {
    await pools.withTenant(failing, (db) => db.raw.exec('DROP TABLE other;'));
    for (const [file, sql] of Object.entries(LATER)) writeFileSync(join(dir, file), sql);
    const report = await migrateTenants(fleet, { dir, concurrency: 6 });
    expect(report.failed).toEqual([]);
    const applied = new Map(report.migrated.map((m) => [m.tenant, m.applied.join()]));
    for (const slug of tenants) expect(applied.get(slug)).toBe(slug === failing ? '2,3' : '3');
    for (const slug of tenants) {
      expect(await versionsOf(slug)).toEqual([1, 2, 3]);
      await pools.withTenant(slug, (db) =>
        db.query(`INSERT INTO reports (id, title, summary) VALUES (2, 'second', 'ok')`),
      );
    }
  });

  it('reports an applied file edited afterwards without running it again', async () => {
    writeFileSync(join(dir, '003_add_summary.sql'), `${LATER['003_add_summary.sql']}-- edited\n`);
    const report = await migrateTenants(fleet, { dir, concurrency: 6 });
    expect(report.failed).toEqual([]);
    expect(report.upToDate).toHaveLength(50);
    expect(report.changed).toHaveLength(50);
    expect(report.changed.every((c) => c.versions.join() === '3')).toBe(true);
  });
});

describe('a tenant whose database cannot be reached', () => {
  it('is reported failed with its cause, without waiting and without a job left queued', async () => {
    const home = tempDir('migrations-down-');
    const reg = await OrgRegistry.open(`sqlite:${join(home, 'registry.db')}`, {
      secrets: new ChainSecretsResolver({ env: {} }),
    });
    const tenantPools = await TenantPools.open({ registry: reg, maxConnections: 4 });
    const engine = new MemoryEngine();
    const local = await Fleet.open({ engine, registry: reg, pools: tenantPools });
    try {
      await reg.migrate();
      for (const slug of ['ok-1', 'ok-2']) {
        await reg.add({ slug, storageMode: 'database', databaseUrl: `sqlite:${join(home, `${slug}.db`)}` });
      }
      // A file under a regular file: the folder can never be created, so no connection opens.
      writeFileSync(join(home, 'blocker'), '');
      await reg.add({
        slug: 'down',
        storageMode: 'database',
        databaseUrl: `sqlite:${join(home, 'blocker', 'x.db')}`,
      });
      // The operator's case: a secret reference whose variable is not set.
      await reg.add({ slug: 'nosecret', storageMode: 'database', databaseUrl: 'env://FLEET_TEST_UNSET_DB' });
      // Were the run to wait for a stalled batch, it would wait past the test's timeout.
      const report = await migrateTenants(local, { dir, stallTimeoutMs: 3_600_000 });
      expect(report.migrated.map((m) => m.tenant)).toEqual(['ok-1', 'ok-2']);
      expect(report.failed.map((f) => f.tenant)).toEqual(['down', 'nosecret']);
      expect(report.failed.every((f) => f.version === null)).toBe(true);
      expect(report.failed[0]!.error).toMatch(/not run: .*"down"/);
      expect(report.failed[1]!.error).toMatch(/not run: .*FLEET_TEST_UNSET_DB/);
      expect(report.progress).toEqual({ total: 2, completed: 2, failed: 0, pending: 0 });
      expect(await engine.counts('fleet-migrations', 'down')).toMatchObject({ waiting: 0, delayed: 0 });
    } finally {
      await local.close();
      await tenantPools.close();
      await reg.close();
      rmSync(home, { recursive: true, force: true });
    }
  });
});

describe('the report is true whoever applied the files', () => {
  it('a job an earlier run left queued that migrates the tenant first makes it "migrated", not "up to date"', async () => {
    const home = tempDir('migrations-stale-');
    const reg = await OrgRegistry.open(`sqlite:${join(home, 'registry.db')}`);
    const tenantPools = await TenantPools.open({ registry: reg, maxConnections: 4 });
    const engine = new MemoryEngine();
    const local = await Fleet.open({ engine, registry: reg, pools: tenantPools });
    try {
      await reg.migrate();
      await reg.add({
        slug: 'late',
        storageMode: 'database',
        databaseUrl: `sqlite:${join(home, 'late.db')}`,
      });
      // What a failed run leaves behind: its job for the tenant, still queued.
      await engine.enqueue('fleet-migrations', {
        tenant: 'late',
        name: 'migrate',
        data: { migrations: loadMigrations(dir) },
        jobId: 'fo.migrate-earlier.1.late',
        attempts: 1,
      });
      const report = await migrateTenants(local, { dir });
      expect(report.upToDate).toEqual([]);
      expect(report.migrated).toEqual([{ tenant: 'late', applied: [1, 2, 3] }]);
      expect(await engine.getJob('fleet-migrations', 'late', 'fo.migrate-earlier.1.late')).toMatchObject({
        state: 'completed',
      });
      // A later run finds it up to date.
      expect((await migrateTenants(local, { dir })).upToDate).toEqual(['late']);
    } finally {
      await local.close();
      await tenantPools.close();
      await reg.close();
      rmSync(home, { recursive: true, force: true });
    }
  });
});

describe('migration files', () => {
  it('are read in version order; a badly named or duplicate file is named in the error', () => {
    const files = tempDir('migration-files-');
    try {
      writeFileSync(join(files, '010_b.sql'), 'select 1;');
      writeFileSync(join(files, '2_a.sql'), 'select 1;');
      writeFileSync(join(files, 'README.md'), 'not sql');
      expect(loadMigrations(files).map((m) => [m.version, m.name, m.file])).toEqual([
        [2, 'a', '2_a.sql'],
        [10, 'b', '010_b.sql'],
      ]);
      writeFileSync(join(files, '002_dup.sql'), 'select 1;');
      expect(() => loadMigrations(files)).toThrow(/version 2 twice \(002_dup\.sql and 2_a\.sql\)/);
      rmSync(join(files, '002_dup.sql'));
      writeFileSync(join(files, 'create.sql'), 'select 1;');
      expect(() => loadMigrations(files)).toThrow(/"create.sql"/);
      mkdirSync(join(files, 'nested'));
      expect(() => loadMigrations(join(files, 'missing'))).toThrow(/directory/);
    } finally {
      rmSync(files, { recursive: true, force: true });
    }
  });
});
