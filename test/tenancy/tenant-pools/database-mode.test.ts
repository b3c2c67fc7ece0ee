/**
 * Database mode on every engine: a tenant with its own Postgres database, MariaDB
 * database or SQLite file gets a pool of its own, and its data stays in its database
 * (issue 3, item 7).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TenantPools } from '../../../src/tenancy/tenant-pools/tenant-pools.js';
import {
  type MysqlDatabase,
  mysqlDatabase,
  type PgWorld,
  pgWorld,
  slugs,
  sqliteFolder,
} from '../../support/pools-fixture.js';

let world: PgWorld;
let mysql: MysqlDatabase;
let files: ReturnType<typeof sqliteFolder>;

beforeAll(async () => {
  world = await pgWorld();
  mysql = await mysqlDatabase();
  files = sqliteFolder();
});
afterAll(async () => {
  await world.cleanup();
  await mysql.drop();
  files.remove();
});

describe('database mode', () => {
  it('gives Postgres, MariaDB and SQLite tenants pools of their own', async () => {
    const pg1 = await world.createDatabase('tp_dbm');
    const pg2 = await world.createDatabase('tp_dbm');
    const [pgA, pgB, my, lite1, lite2] = slugs('dbm', 5) as [string, string, string, string, string];
    await world.addOrgs([
      { slug: pgA, storageMode: 'database', databaseUrl: pg1.url },
      { slug: pgB, storageMode: 'database', databaseUrl: pg2.url },
      { slug: my, storageMode: 'database', databaseUrl: mysql.url },
      { slug: lite1, storageMode: 'database', databaseUrl: files.url('one') },
      { slug: lite2, storageMode: 'database', databaseUrl: files.url('two') },
    ]);
    const pools = await TenantPools.open({ registry: world.registry, maxConnections: 10 });
    const placeholder = (kind: string) => (kind === 'postgres' ? '$1' : '?');
    for (const slug of [pgA, pgB, my, lite1, lite2]) {
      await pools.withTenant(slug, async (db) => {
        await db.query('CREATE TABLE notes (owner varchar(80) NOT NULL)');
        await db.query(`INSERT INTO notes (owner) VALUES (${placeholder(db.kind)})`, [slug]);
      });
    }
    for (const slug of [pgA, pgB, my, lite1, lite2]) {
      const rows = await pools.withTenant(slug, (db) =>
        db.query<{ owner: string }>('SELECT owner FROM notes'),
      );
      expect(rows).toEqual([{ owner: slug }]);
    }
    const kinds = Object.fromEntries(pools.stats().pools.map((p) => [p.slug, [p.mode, p.kind, p.open]]));
    expect(kinds).toEqual({
      [pgA]: ['database', 'postgres', 1],
      [pgB]: ['database', 'postgres', 1],
      [my]: ['database', 'mysql', 1],
      [lite1]: ['database', 'sqlite', 1],
      [lite2]: ['database', 'sqlite', 1],
    });
    const db = await pools.acquire(lite1);
    expect(db.schema).toBeNull();
    expect(db.raw.kind).toBe('sqlite');
    db.release();
    expect(await world.serverConnections(pg1.name)).toBe(1);
    expect(await mysql.serverConnections()).toBe(1);
    await pools.close();
    expect(await world.serverConnections(pg1.name)).toBe(0);
    // MariaDB closes the socket a moment before it drops the thread from its processlist.
    while ((await mysql.serverConnections()) !== 0) await new Promise((resolve) => setTimeout(resolve, 5));
  });
});
