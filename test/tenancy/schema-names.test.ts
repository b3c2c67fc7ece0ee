/**
 * A schema belongs to one tenant. On a Postgres registry a schema-mode org can neither
 * take another org's schema (by name, or by a slug whose default schema name is the same)
 * nor a schema that is not a tenant's (`public`, `information_schema`, `pg_*`). On every
 * kind `migrate()` builds a unique index on the schema name, names the orgs that share one
 * when an older registry cannot take the index, and lets database-mode orgs (no schema)
 * be as many as they like.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/reporting/errors.js';
import { connect, type RawConnection } from '../../src/tenancy/drivers/index.js';
import { OrgRegistry } from '../../src/tenancy/registry/org-registry.js';
import { type DatabaseCase, mysqlCase, postgresCase, type Store, sqliteCase } from '../support/databases.js';
import { uniqueName } from '../support/services.js';

const slug = (prefix: string) => uniqueName(prefix).replaceAll('_', '-');

async function rejection(promise: Promise<unknown>): Promise<ValidationError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ValidationError);
  return err as ValidationError;
}

async function schemaExists(conn: RawConnection, name: string): Promise<boolean> {
  const rows = await conn.query('SELECT 1 FROM information_schema.schemata WHERE schema_name = $1', [name]);
  return rows.length > 0;
}

describe('schema names on a Postgres registry', () => {
  const dbCase = postgresCase();
  let store: Store;
  let registry: OrgRegistry;
  let admin: RawConnection;

  beforeAll(async () => {
    store = await dbCase.createStore();
    registry = await OrgRegistry.open(store.url, { cacheTtlMs: 0 });
    await registry.migrate();
    admin = await connect(store.url);
  });

  afterAll(async () => {
    await admin?.close();
    await registry?.close();
    await store?.drop();
    await dbCase.close();
  });

  it("refuses a schema-mode org on another org's schema, on add and on update", async () => {
    const acme = await registry.add({ slug: slug('acme') });
    const evil = slug('evil');
    const err = await rejection(registry.add({ slug: evil, schemaName: acme.schemaName }));
    expect(err.field).toBe('schemaName');
    expect(err.message).toContain(JSON.stringify(acme.slug));
    expect(await registry.find(evil)).toBeNull();

    const other = await registry.add({ slug: slug('other') });
    const updateErr = await rejection(registry.update(other.slug, { schemaName: acme.schemaName }));
    expect(updateErr.field).toBe('schemaName');
    expect(updateErr.message).toContain(JSON.stringify(acme.slug));
    expect(await registry.get(other.slug)).toEqual(other);

    // A database-mode org taken back to schema mode gets the default name, checked the same.
    const twin = await registry.add({
      slug: acme.slug.replaceAll('-', '_'),
      storageMode: 'database',
      databaseUrl: 'env://TWIN_DB',
    });
    const modeErr = await rejection(registry.update(twin.slug, { storageMode: 'schema', databaseUrl: null }));
    expect(modeErr.field).toBe('schemaName');
    expect(await registry.get(twin.slug)).toEqual(twin);
  });

  it("says when two slugs meet on one default schema name ('-' becomes '_')", async () => {
    const dashed = await registry.add({ slug: slug('a-b') });
    const underscored = dashed.slug.replaceAll('-', '_');
    const err = await rejection(registry.add({ slug: underscored }));
    expect(err.field).toBe('schemaName');
    expect(err.message).toContain(JSON.stringify(dashed.slug));
    expect(err.message).toContain("'-' becomes '_'");
    expect(await registry.find(underscored)).toBeNull();
    // With a schema name of its own it is welcome.
    const own = await registry.add({ slug: underscored, schemaName: `${underscored}_own` });
    expect(own.schemaName).toBe(`${underscored}_own`);
  });

  const reserved = ['public', 'pg_catalog', 'information_schema', 'pg_toast', 'pg_temp_1', 'pg_mine'];
  it.each(reserved)('refuses the reserved schema %s, and provisions nothing', async (schemaName) => {
    const name = slug('res');
    const err = await rejection(registry.add({ slug: name, schemaName }));
    expect(err.field).toBe('schemaName');
    expect(await registry.find(name)).toBeNull();
  });

  it('refuses a slug whose default schema name is reserved', async () => {
    for (const name of ['public', 'pg-tenant', 'information-schema']) {
      const err = await rejection(registry.add({ slug: name }));
      expect(err.field).toBe('schemaName');
      expect(await registry.find(name)).toBeNull();
    }
  });

  it('will not provision a reserved schema already in an old row', async () => {
    const name = slug('old');
    // Written past validation, as a registry from before the rule could hold it.
    await admin.query(
      `INSERT INTO fleet_orgs (slug, storage_mode, schema_name, active, weight, created_at)
       VALUES ($1, 'schema', 'pg_sneaky', true, 1, now())`,
      [name],
    );
    const err = await rejection(registry.provision(name));
    expect(err.field).toBe('schemaName');
    expect(await schemaExists(admin, 'pg_sneaky')).toBe(false);
    await admin.query('DELETE FROM fleet_orgs WHERE slug = $1', [name]);
  });
});

const cases: DatabaseCase[] = [postgresCase(), mysqlCase(), sqliteCase()];

describe.each(cases)('the schema-name index on a $name registry', (dbCase) => {
  let store: Store;
  let admin: RawConnection;

  beforeAll(async () => {
    store = await dbCase.createStore();
    admin = await connect(store.url);
  });

  afterAll(async () => {
    await admin?.close();
    await store?.drop();
    await dbCase.close();
  });

  const p = (n: number) => (dbCase.name === 'postgres' ? `$${n}` : '?');
  const insertRaw = (slugValue: string, schema: string | null) =>
    admin.query(
      `INSERT INTO fleet_orgs (slug, storage_mode, database_url, schema_name, active, weight, created_at)
       VALUES (${p(1)}, 'database', 'env://X', ${p(2)}, ${p(3)}, 1, ${p(4)})`,
      [
        slugValue,
        schema,
        dbCase.name === 'postgres' ? true : 1,
        dbCase.name === 'sqlite' ? new Date().toISOString() : new Date(),
      ],
    );
  const dropIndex = () =>
    admin.query(
      dbCase.name === 'mysql'
        ? 'ALTER TABLE fleet_orgs DROP INDEX fleet_orgs_schema_name'
        : 'DROP INDEX fleet_orgs_schema_name',
    );

  it('exists after migrate, keeps database-mode orgs apart, and names the orgs an old registry shares a schema between', async () => {
    await using registry = await OrgRegistry.open(store.url, { cacheTtlMs: 0 });
    await registry.migrate();
    // Many orgs without a schema: NULLs never collide.
    for (let i = 0; i < 3; i++) {
      await registry.add({ slug: `db-${i}`, storageMode: 'database', databaseUrl: `env://DB_${i}` });
    }
    // The index refuses a second row on one schema even past the registry's checks.
    await insertRaw('raw-1', 'shared');
    await expect(insertRaw('raw-2', 'shared')).rejects.toBeTruthy();

    // A registry from before the index: two orgs on one schema.
    await dropIndex();
    await insertRaw('raw-2', 'shared');
    const err = await rejection(registry.migrate());
    expect(err.field).toBe('schemaName');
    expect(err.message).toContain('"shared"');
    expect(err.message).toContain('"raw-1"');
    expect(err.message).toContain('"raw-2"');
    await admin.query(`UPDATE fleet_orgs SET schema_name = ${p(1)} WHERE slug = ${p(2)}`, ['moved', 'raw-2']);
    await registry.migrate();
    await expect(insertRaw('raw-3', 'shared')).rejects.toBeTruthy();
    expect(await registry.count()).toBe(5);
  });
});
