/**
 * Schema mode on Postgres: tenants share one pool on the registry database and every
 * checkout sets `search_path` to the tenant's quoted schema, so interleaved jobs of two
 * tenants on a single connection each see only their own rows, and every checkout starts
 * from a clean session.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../../src/tenancy/drivers/index.js';
import type { TenantConnection } from '../../../src/tenancy/tenant-pools/tenant-connection.js';
import { TenantPools } from '../../../src/tenancy/tenant-pools/tenant-pools.js';
import { type PgWorld, pgWorld, slugs } from '../../support/pools-fixture.js';
import { until } from '../../support/wait.js';

let world: PgWorld;
let a: string;
let b: string;

beforeAll(async () => {
  world = await pgWorld();
  [a, b] = slugs('sch', 2) as [string, string];
  // b's schema is a reserved word: it only works if the identifier is quoted.
  await world.addOrgs([
    { slug: a, storageMode: 'schema' },
    { slug: b, storageMode: 'schema', schemaName: 'order' },
  ]);
  await world.registry.provision(a);
  await world.registry.provision(b);
  const schemaA = a.replaceAll('-', '_');
  const conn = await connect(world.registry.databaseUrl);
  try {
    for (const [schema, owner] of [
      [schemaA, 'A'],
      ['order', 'B'],
    ] as const) {
      await conn.exec(`CREATE TABLE "${schema}".items (owner text NOT NULL)`);
      await conn.query(`INSERT INTO "${schema}".items (owner) VALUES ($1), ($1)`, [owner]);
    }
  } finally {
    await conn.close();
  }
});
afterAll(async () => {
  await world.cleanup();
});

describe('schema mode', () => {
  it('shows each tenant only its own rows, 1,000 interleaved jobs on one shared connection', async () => {
    const pools = await TenantPools.open({
      registry: world.registry,
      maxConnections: 2,
      schemaPoolMaxConnections: 1,
    });
    const seen = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => {
        const slug = i % 2 === 0 ? a : b;
        return pools.withTenant(slug, async (db) => {
          const rows = await db.query<{ owner: string }>('SELECT owner FROM items');
          return { slug, schema: db.schema, owners: rows.map((row) => row.owner) };
        });
      }),
    );
    for (const job of seen) {
      expect(job.owners).toEqual(job.slug === a ? ['A', 'A'] : ['B', 'B']);
      expect(job.schema).toBe(job.slug === a ? a.replaceAll('-', '_') : 'order');
    }
    const stats = pools.stats();
    expect(stats.pools).toHaveLength(1);
    expect(stats.pools[0]).toMatchObject({ slug: null, mode: 'schema', kind: 'postgres' });
    expect(stats.counters.connects).toBe(1);
    expect(await world.serverConnections(world.registryDb)).toBe(1);
    await pools.close();
  });

  it('resets search_path on every checkout, whatever the previous job set', async () => {
    const pools = await TenantPools.open({ registry: world.registry, schemaPoolMaxConnections: 1 });
    await pools.withTenant(b, async (db) => {
      await db.query('SET search_path TO public');
    });
    const path = await pools.withTenant(b, (db) => db.query<{ search_path: string }>('SHOW search_path'));
    expect(path[0]?.search_path).toBe('"order", public');
    const owners = await pools.withTenant(a, (db) => db.query<{ owner: string }>('SELECT owner FROM items'));
    expect(owners.map((row) => row.owner)).toEqual(['A', 'A']);
    expect(pools.stats().counters.connects).toBe(1);
    await pools.close();
  });

  it("keeps the tenant's schema when its first statement fails or opens a transaction that rolls back", async () => {
    const pools = await TenantPools.open({ registry: world.registry, schemaPoolMaxConnections: 1 });
    const ownersOf = async (db: TenantConnection) =>
      (await db.query<{ owner: string }>('SELECT owner FROM items')).map((row) => row.owner);
    try {
      // The switch travels with the first statement: each of these would undo it, were it
      // part of that statement's transaction, and leave a on b's schema.
      const firsts: Array<(db: TenantConnection) => Promise<unknown>> = [
        (db) => db.query('SELEC owner FROM items').catch(() => {}),
        (db) => db.query('SELECT $1::int', ['not a number']).catch(() => {}),
        async (db) => {
          await db.query('BEGIN');
          await db.query("SET LOCAL app.tenant = 'x'");
          await db.query('ROLLBACK');
        },
      ];
      for (const first of firsts) {
        await pools.withTenant(b, (db) => db.query('SELECT 1'));
        const owners = await pools.withTenant(a, async (db) => {
          await first(db);
          return ownersOf(db);
        });
        expect(owners).toEqual(['A', 'A']);
      }
      expect(pools.stats().counters.connects).toBe(1);
    } finally {
      await pools.close();
    }
  });

  it('fails the first statement, and closes the connection, when the reset a previous job left unable to run fails', async () => {
    const pools = await TenantPools.open({ registry: world.registry, schemaPoolMaxConnections: 1 });
    const closes: string[] = [];
    pools.on('connection:close', (event) => closes.push(event.reason));
    try {
      // Enough temp tables that DISCARD ALL outlasts the 1 ms statement_timeout left behind.
      await pools.withTenant(a, async (db) => {
        await db.query(
          "DO $$ BEGIN FOR i IN 1..400 LOOP EXECUTE format('CREATE TEMP TABLE t%s (x int)', i); END LOOP; END $$",
        );
        await db.query("SET statement_timeout = '1ms'");
      });
      // The job catches the error and gives the connection back as if all went well.
      await pools.withTenant(b, async (db) => {
        await expect(db.query('SELECT owner FROM items')).rejects.toThrow(/statement timeout/);
      });
      await until(() => closes.length > 0, 'the connection closed');
      expect(closes).toEqual(['dead']);
      // The next checkout opens a fresh connection, with nothing of a's.
      const owners = await pools.withTenant(b, (db) =>
        db.query<{ owner: string }>('SELECT owner FROM items'),
      );
      expect(owners.map((row) => row.owner)).toEqual(['B', 'B']);
      expect(pools.stats().counters.connects).toBe(2);
    } finally {
      await pools.close();
    }
  });

  it('gives every checkout a clean session, even the same tenant again on the same connection', async () => {
    const pools = await TenantPools.open({
      registry: world.registry,
      maxConnections: 1,
      schemaPoolMaxConnections: 1,
    });
    try {
      await pools.withTenant(a, async (db) => {
        await db.query("SET statement_timeout = '5min'");
        await db.query("SELECT set_config('app.user_id', '42', false)");
        await db.query('CREATE TEMP TABLE scratch (x int)');
      });
      const [row] = await pools.withTenant(a, (db) =>
        db.query<{ timeout: string; user_id: string | null; temp: string | null }>(
          "SELECT current_setting('statement_timeout') AS timeout, " +
            "current_setting('app.user_id', true) AS user_id, to_regclass('pg_temp.scratch')::text AS temp",
        ),
      );
      expect(row).toEqual({ timeout: '0', user_id: '', temp: null });
      // The same connection served both checkouts: the session was reset, not replaced.
      expect(pools.stats().counters.connects).toBe(1);
    } finally {
      await pools.close();
    }
  });

  it("never lets a tenant read another tenant's temp table or held cursor on the shared connection", async () => {
    const pools = await TenantPools.open({
      registry: world.registry,
      maxConnections: 2,
      schemaPoolMaxConnections: 1,
    });
    try {
      // pg_temp is searched before search_path: A's temp table would shadow B's items.
      await pools.withTenant(a, async (db) => {
        await db.query('CREATE TEMP TABLE items AS SELECT * FROM items');
        await db.query('BEGIN');
        await db.query('DECLARE held CURSOR WITH HOLD FOR SELECT owner FROM items');
        await db.query('COMMIT');
      });
      const owners = await pools.withTenant(b, (db) =>
        db.query<{ owner: string }>('SELECT owner FROM items'),
      );
      expect(owners.map((row) => row.owner)).toEqual(['B', 'B']);
      await pools.withTenant(b, async (db) => {
        await expect(db.query('FETCH ALL FROM held')).rejects.toThrow(/cursor "held" does not exist/);
      });
      // The same connection served both tenants: the state was reset, not the connection replaced.
      expect(pools.stats().counters.connects).toBe(1);
    } finally {
      await pools.close();
    }
  });

  it('closes a connection released inside a transaction instead of lending it to the next tenant', async () => {
    const pools = await TenantPools.open({
      registry: world.registry,
      maxConnections: 2,
      schemaPoolMaxConnections: 1,
    });
    const closes: string[] = [];
    pools.on('connection:close', (event) => closes.push(event.reason));
    try {
      const la = await pools.acquire(a);
      await la.query('BEGIN');
      await la.query("INSERT INTO items (owner) VALUES ('A-uncommitted')");
      la.release();
      const lb = await pools.acquire(b);
      try {
        const path = await lb.query<{ search_path: string }>('SHOW search_path');
        expect(path[0]?.search_path).toBe('"order", public');
        // Were B inside A's transaction, this ROLLBACK would undo B's search_path too.
        await lb.query('ROLLBACK').catch(() => {});
        const owners = await lb.query<{ owner: string }>('SELECT owner FROM items');
        expect(owners.map((row) => row.owner)).toEqual(['B', 'B']);
      } finally {
        lb.release();
      }
      const ownersA = await pools.withTenant(a, (db) =>
        db.query<{ owner: string }>('SELECT owner FROM items'),
      );
      expect(ownersA.map((row) => row.owner)).toEqual(['A', 'A']);
      expect(closes).toContain('in-transaction');
    } finally {
      await pools.close();
    }
  });
});
