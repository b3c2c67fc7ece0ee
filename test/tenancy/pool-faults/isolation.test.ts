/**
 * A connection is lent only in the state a fresh one has, on every database kind: one
 * given back inside a transaction, or with statements still in flight, is never lent to
 * the next caller; and what a caller sees of a refused or closed connection is a
 * FleetError.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClosedError, FleetError, TenantConnectionError } from '../../../src/reporting/errors.js';
import { connect } from '../../../src/tenancy/drivers/index.js';
import { TenantPools } from '../../../src/tenancy/tenant-pools/tenant-pools.js';
import { closedPort } from '../../support/net.js';
import {
  type MysqlDatabase,
  mysqlDatabase,
  type PgWorld,
  pgWorld,
  slugs,
  sqliteFolder,
} from '../../support/pools-fixture.js';

let world: PgWorld;
let maria: MysqlDatabase;
const files = sqliteFolder();
// Every process warning of the file (pg's "already executing a query" deprecation among them).
const warnings: string[] = [];
const onWarning = (warning: Error) => warnings.push(warning.message);

beforeAll(async () => {
  process.on('warning', onWarning);
  world = await pgWorld();
  maria = await mysqlDatabase();
});
afterAll(async () => {
  process.off('warning', onWarning);
  await world.cleanup();
  await maria.drop();
  files.remove();
});

/** Counts the rows of `table` from a session of its own (sees committed rows only). */
async function committedRows(url: string, table: string): Promise<number> {
  const conn = await connect(url);
  try {
    const rows = await conn.query<{ n: number | string }>(`SELECT COUNT(*) AS n FROM ${table}`);
    return Number(rows[0]?.n);
  } finally {
    await conn.close();
  }
}

describe('a connection given back inside a transaction', () => {
  const cases = [
    { kind: 'mysql', begin: 'START TRANSACTION', url: () => maria.url },
    // With autocommit off, the insert opens a transaction of its own.
    { kind: 'mysql', begin: 'SET autocommit = 0', url: () => maria.url },
    { kind: 'sqlite', begin: 'BEGIN', url: () => files.url(`tx_${Date.now()}`) },
  ] as const;
  for (const [i, c] of cases.entries()) {
    it(`${c.kind} after ${c.begin}: is not lent again; the next borrower's write commits on its own`, async () => {
      const url = c.url();
      const table = `items_${c.kind}_${i}`;
      const setup = await connect(url);
      await setup.exec(`CREATE TABLE ${table} (owner VARCHAR(10) NOT NULL)`);
      await setup.close();
      const [slug] = slugs(`tx-${c.kind}`, 1) as [string];
      await world.addOrgs([{ slug, storageMode: 'database', databaseUrl: url }]);
      const pools = await TenantPools.open({
        registry: world.registry,
        maxConnections: 1,
        perTenantMaxConnections: 1,
      });
      const closes: string[] = [];
      pools.on('connection:close', (event) => closes.push(event.reason));
      try {
        const first = await pools.acquire(slug);
        await first.query(c.begin);
        await first.query(`INSERT INTO ${table} (owner) VALUES ('first')`);
        first.release();
        await pools.withTenant(slug, async (db) => {
          await db.query(`INSERT INTO ${table} (owner) VALUES ('second')`);
        });
        // The first caller's open transaction was rolled back with its session; the second
        // caller's autocommitted row is there for everyone.
        expect(await committedRows(url, table)).toBe(1);
        expect(closes).toContain('in-transaction');
      } finally {
        await pools.close();
      }
    });
  }
});

describe('a Postgres connection given back with statements in flight', () => {
  it("is not lent to another tenant: B's write is not swallowed by A's transaction", async () => {
    const [a, b] = slugs('fl', 2) as [string, string];
    await world.addOrgs([
      { slug: a, storageMode: 'schema' },
      { slug: b, storageMode: 'schema' },
    ]);
    const admin = await connect(world.registry.databaseUrl);
    for (const slug of [a, b]) {
      await world.registry.provision(slug);
      await admin.exec(`CREATE TABLE "${slug.replaceAll('-', '_')}".items (owner text NOT NULL)`);
    }
    await admin.close();
    const pools = await TenantPools.open({
      registry: world.registry,
      maxConnections: 1,
      schemaPoolMaxConnections: 1,
    });
    try {
      const dbA = await pools.acquire(a);
      // A forgets to await: BEGIN and its insert are still on their way when it releases.
      const begun = dbA.query('BEGIN');
      const inserted = dbA.query(`INSERT INTO items (owner) VALUES ('A')`);
      dbA.release();
      await pools.withTenant(b, (db) => db.query(`INSERT INTO items (owner) VALUES ('B')`));
      await Promise.allSettled([begun, inserted]);
      const bRows = await committedRows(world.registry.databaseUrl, `"${b.replaceAll('-', '_')}".items`);
      expect(bRows).toBe(1);
      const aRows = await committedRows(world.registry.databaseUrl, `"${a.replaceAll('-', '_')}".items`);
      expect(aRows).toBe(0);
    } finally {
      await pools.close();
    }
    expect(warnings.filter((w) => /already executing a query/.test(w))).toEqual([]);
  });
});

describe('errors a caller sees are FleetErrors', () => {
  it('a tenant database refusing connections rejects acquire with TenantConnectionError', async () => {
    const port = await closedPort();
    const [slug] = slugs('refused', 1) as [string];
    const secret = 'Zx7PwAz-secret';
    await world.addOrgs([
      {
        slug,
        storageMode: 'database',
        databaseUrl: `postgres://app:${secret}@127.0.0.1:${port}/nowhere`,
      },
    ]);
    const pools = await TenantPools.open({ registry: world.registry, maxConnections: 1 });
    try {
      const error = await pools.acquire(slug).then(
        () => null,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(TenantConnectionError);
      const typed = error as TenantConnectionError;
      expect(typed).toBeInstanceOf(FleetError);
      expect(typed.code).toBe('TENANT_CONNECTION');
      expect(typed.message).toContain(JSON.stringify(slug));
      expect(typed.message).toContain(`127.0.0.1:${port}`);
      // The driver's message names its code: said once, not "got ECONNREFUSED: connect ECONNREFUSED …".
      expect(typed.message.match(/ECONNREFUSED/g)).toHaveLength(1);
      expect((typed.cause as { code?: string }).code).toBe('ECONNREFUSED');
      expect(JSON.stringify({ m: typed.message, s: typed.stack, c: String(typed.cause) })).not.toContain(
        secret,
      );
    } finally {
      await pools.close();
    }
  });

  it('query on a lease whose pool was closed by force rejects with ClosedError', async () => {
    const [slug] = slugs('forced', 1) as [string];
    const tenant = await world.createDatabase('tp_forced');
    await world.addOrgs([{ slug, storageMode: 'database', databaseUrl: tenant.url }]);
    const pools = await TenantPools.open({ registry: world.registry, maxConnections: 1, closeTimeoutMs: 1 });
    const db = await pools.acquire(slug);
    await db.query('select 1');
    await pools.close();
    await expect(db.query('select 1')).rejects.toBeInstanceOf(ClosedError);
    db.release();
  });
});
