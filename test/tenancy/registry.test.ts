/**
 * One registry suite, written once and run unchanged over a Postgres, a MySQL and a
 * SQLite registry, each in a database (or file) of its own, created for this run and
 * dropped after it.
 */
import { once } from 'node:events';
import { existsSync, rmSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ClosedError,
  ConfigError,
  SecretResolutionError,
  TenantConnectionError,
  UnknownTenantError,
  ValidationError,
} from '../../src/reporting/errors.js';
import { connect } from '../../src/tenancy/drivers/index.js';
import type { Org, OrgInput } from '../../src/tenancy/org.js';
import { OrgRegistry } from '../../src/tenancy/registry/org-registry.js';
import { ChainSecretsResolver } from '../../src/tenancy/secrets.js';
import { type DatabaseCase, mysqlCase, postgresCase, type Store, sqliteCase } from '../support/databases.js';
import { tempDir, uniqueName } from '../support/services.js';

const cases: Array<[string, () => DatabaseCase]> = [
  ['postgres', postgresCase],
  ['mysql', mysqlCase],
  ['sqlite', sqliteCase],
];

describe.each(cases)('OrgRegistry on a %s registry', (_name, makeCase) => {
  const dbCase = makeCase();
  const env: Record<string, string> = {};
  const secrets = new ChainSecretsResolver({ env });
  let store: Store;
  let registry: OrgRegistry;
  const tenantDatabases: string[] = [];
  const tempDirs: string[] = [];
  const scratch = () => {
    const dir = tempDir();
    tempDirs.push(dir);
    return dir;
  };

  // Schema mode needs a Postgres registry; elsewhere an org lives in a database of its own.
  const storage = (): Partial<OrgInput> =>
    dbCase.name === 'postgres'
      ? {}
      : { storageMode: 'database', databaseUrl: `env://${uniqueName('FLEET_DB').toUpperCase()}` };
  const slug = (prefix = 'org') => uniqueName(prefix).replaceAll('_', '-');

  /** Runs `fn`, expects it to throw `type`, and returns the error. */
  async function rejection<E extends Error>(fn: () => Promise<unknown>, type: new (...args: never[]) => E) {
    const err = await fn().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(type);
    return err as E;
  }

  /** Expects `add(input)` to be rejected with a ValidationError on `field` and nothing written. */
  async function expectRejectedAdd(input: OrgInput, field: string) {
    const before = await registry.list();
    const err = await rejection(() => registry.add(input), ValidationError);
    expect(err.field).toBe(field);
    expect(await registry.list()).toEqual(before);
    expect(await registry.count()).toBe(before.length);
    return err;
  }

  beforeAll(async () => {
    store = await dbCase.createStore();
    registry = await OrgRegistry.open(store.url, { secrets, cacheTtlMs: 0 });
    await registry.migrate();
  });

  afterAll(async () => {
    await registry?.close();
    for (const name of tenantDatabases) await dbCase.dropTenant(name);
    await store?.drop();
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
    await dbCase.close();
  });

  it('migrates a fresh store when several processes migrate at once, and again idempotently; isMigrated tells before and after', async () => {
    const fresh = await dbCase.createStore();
    const registries = await Promise.all([1, 2, 3].map(() => OrgRegistry.open(fresh.url)));
    try {
      // isMigrated reads: it says no on a fresh store, and no again, creating nothing.
      expect(await registries[0]!.isMigrated()).toBe(false);
      expect(await registries[1]!.isMigrated()).toBe(false);
      await Promise.all(registries.map((r) => r.migrate()));
      expect(await registries[1]!.isMigrated()).toBe(true);
      await registries[0]!.migrate();
      expect(await registries[1]!.count()).toBe(0);
      const org = await registries[2]!.add({ slug: slug(), ...storage() });
      expect((await registries[0]!.list()).map((o) => o.slug)).toEqual([org.slug]);
    } finally {
      await Promise.all(registries.map((r) => r.close()));
      await fresh.drop();
    }
  });

  it('exposes its database kind and its own URL', () => {
    expect(registry.kind).toBe(dbCase.name);
    expect(registry.databaseUrl).toBe(store.url);
  });

  it('adds an org and reads it back identically, through a fresh registry too', async () => {
    const input: OrgInput = {
      slug: slug(),
      storageMode: 'database',
      databaseUrl: 'env://SOME_TENANT_DB',
      active: false,
      weight: 3,
      maxConcurrency: 2,
      maxConnections: 5,
    };
    const added = await registry.add(input);
    expect(added).toMatchObject({ ...input, schemaName: null });
    expect(added.createdAt).toBeInstanceOf(Date);

    await using other = await OrgRegistry.open(store.url);
    for (const read of [
      await registry.get(input.slug),
      await other.get(input.slug),
      await other.find(input.slug),
    ]) {
      expect(read).toEqual(added);
      expect(read?.active).toBe(false);
      expect(read?.createdAt).toBeInstanceOf(Date);
      expect(read?.createdAt.getTime()).toBe(added.createdAt.getTime());
    }
    const listed = (await other.list({ active: false })).find((o) => o.slug === input.slug);
    expect(listed).toEqual(added);
  });

  it('fills in the defaults', async () => {
    const org = await registry.add({ slug: slug('def-ault'), ...storage() });
    expect(org).toMatchObject({ active: true, weight: 1, maxConcurrency: null, maxConnections: null });
    expect(await registry.get(org.slug)).toEqual(org);
    if (dbCase.name === 'postgres') {
      expect(org.storageMode).toBe('schema');
      expect(org.schemaName).toBe(org.slug.replaceAll('-', '_'));
      expect(org.databaseUrl).toBeNull();
    }
  });

  it('get throws UnknownTenantError and find returns null for a slug nobody registered', async () => {
    const missing = slug('missing');
    const err = await rejection(() => registry.get(missing), UnknownTenantError);
    expect(err.slug).toBe(missing);
    expect(await registry.find(missing)).toBeNull();
    expect(await registry.find('Not A Slug')).toBeNull();
  });

  it('lists by slug in byte order and pages through with a keyset', async () => {
    const prefix = uniqueName('page');
    // '-' < digits < '_' < letters in byte order; a locale collation would disagree.
    const suffixes = ['b', '-a', '_a', '0', 'a', '-b', 'a-0', 'a_0', '9z', 'z', 'a0'];
    const inactive = new Set(['-a', '0', 'a_0']);
    for (const [i, suffix] of suffixes.entries()) {
      // `-a` and `_a` would default to one schema name: each gets its own.
      const schema = dbCase.name === 'postgres' ? { schemaName: `${prefix}_s${i}` } : {};
      await registry.add({
        slug: `${prefix}${suffix}`,
        active: !inactive.has(suffix),
        ...storage(),
        ...schema,
      });
    }
    const mine = (orgs: Org[]) => orgs.map((o) => o.slug).filter((s) => s.startsWith(prefix));
    const all = suffixes.map((s) => `${prefix}${s}`).sort();
    const active = suffixes
      .filter((s) => !inactive.has(s))
      .map((s) => `${prefix}${s}`)
      .sort();

    expect(mine(await registry.list())).toEqual(all);
    expect(mine(await registry.list({ active: true }))).toEqual(active);
    expect(mine(await registry.list({ active: false }))).toEqual(
      [...inactive].map((s) => `${prefix}${s}`).sort(),
    );

    const paged: string[] = [];
    let after = prefix;
    let pages = 0;
    for (;;) {
      const page = await registry.list({ active: true, after, limit: 4 });
      pages++;
      expect(page.length).toBeLessThanOrEqual(4);
      const inPrefix = mine(page);
      paged.push(...inPrefix);
      if (page.length < 4 || inPrefix.length < page.length) break;
      after = page[page.length - 1]!.slug;
    }
    expect(paged).toEqual(active);
    expect(pages).toBe(3);
  });

  it('counts all, active and inactive orgs', async () => {
    const [all, active, inactive] = await Promise.all([
      registry.count(),
      registry.count({ active: true }),
      registry.count({ active: false }),
    ]);
    expect(all).toBe(active + inactive);
    await registry.add({ slug: slug('cnt'), ...storage() });
    await registry.add({ slug: slug('cnt'), active: false, ...storage() });
    expect(await registry.count()).toBe(all + 2);
    expect(await registry.count({ active: true })).toBe(active + 1);
    expect(await registry.count({ active: false })).toBe(inactive + 1);
    expect(await registry.count()).toBe((await registry.list()).length);
  });

  it('updates fields, keeps slug and creation time, and rejects a bad patch without writing', async () => {
    const org = await registry.add({ slug: slug('upd'), ...storage() });
    const updated = await registry.update(org.slug, { weight: 4, maxConcurrency: 3, maxConnections: 2 });
    expect(updated).toEqual({ ...org, weight: 4, maxConcurrency: 3, maxConnections: 2 });
    expect(await registry.get(org.slug)).toEqual(updated);

    const cleared = await registry.update(org.slug, { maxConcurrency: null });
    expect(cleared.maxConcurrency).toBeNull();
    expect(cleared.createdAt.getTime()).toBe(org.createdAt.getTime());

    expect((await rejection(() => registry.update(org.slug, { weight: 0 }), ValidationError)).field).toBe(
      'weight',
    );
    const withSlug = { slug: 'other' } as unknown as { weight: number };
    expect((await rejection(() => registry.update(org.slug, withSlug), ValidationError)).field).toBe('slug');
    await rejection(() => registry.update(slug('nobody'), { weight: 2 }), UnknownTenantError);
    expect(await registry.get(org.slug)).toEqual(cleared);
  });

  it('deactivates an org: it stays registered but leaves the active list', async () => {
    const org = await registry.add({ slug: slug('deact'), ...storage() });
    const activeBefore = await registry.count({ active: true });
    const deactivated = await registry.deactivate(org.slug);
    expect(deactivated).toEqual({ ...org, active: false });
    expect(await registry.get(org.slug)).toEqual(deactivated);
    expect((await registry.list({ active: true })).map((o) => o.slug)).not.toContain(org.slug);
    expect((await registry.list({ active: false })).map((o) => o.slug)).toContain(org.slug);
    expect(await registry.count({ active: true })).toBe(activeBefore - 1);
    await rejection(() => registry.deactivate(slug('nobody')), UnknownTenantError);
  });

  it('removes an org: its row goes, the cache forgets it, its database stays', async () => {
    const name = uniqueName('fleet_tenant');
    tenantDatabases.push(name);
    const variable = uniqueName('FLEET_TENANT').toUpperCase();
    env[variable] = dbCase.tenantUrl(name);
    const org = await registry.add({
      slug: slug('rm'),
      storageMode: 'database',
      databaseUrl: `env://${variable}`,
    });
    await registry.provision(org.slug);
    const before = await registry.count();

    await using cached = await OrgRegistry.open(store.url, { secrets, cacheTtlMs: 600_000 });
    expect(await cached.get(org.slug)).toEqual(org);
    expect(await cached.remove(org.slug)).toEqual(org);
    expect(await cached.find(org.slug)).toBeNull();
    expect(await registry.find(org.slug)).toBeNull();
    expect(await registry.count()).toBe(before - 1);
    expect(await dbCase.tenantExists(name)).toBe(true);

    await rejection(() => registry.remove(org.slug), UnknownTenantError);
    // The slug is free again, and the kept database is the one it provisions to.
    await registry.add({ slug: org.slug, storageMode: 'database', databaseUrl: `env://${variable}` });
    expect((await registry.provision(org.slug)).created).toBe(false);
  });

  if (dbCase.name === 'postgres') {
    it('removes a schema-mode org and keeps its schema', async () => {
      const org = await registry.add({ slug: slug('rms'), storageMode: 'schema' });
      await registry.provision(org.slug);
      await registry.remove(org.slug);
      expect(await registry.find(org.slug)).toBeNull();
      expect(await schemaExists(org.schemaName!)).toBe(true);
    });
  }

  it('answers lookups from its cache, and forgets it on every change it makes', async () => {
    await using cached = await OrgRegistry.open(store.url, { cacheTtlMs: 600_000 });
    const org = await registry.add({ slug: slug('cache'), ...storage() });
    expect((await cached.get(org.slug)).weight).toBe(1);

    // Another process changes the org: the cache answers with what it saw.
    await registry.update(org.slug, { weight: 7 });
    expect((await cached.get(org.slug)).weight).toBe(1);
    expect((await registry.get(org.slug)).weight).toBe(7);

    // A change made through the cached registry forgets every cached lookup.
    await cached.update(org.slug, { maxConnections: 9 });
    expect(await cached.get(org.slug)).toMatchObject({ weight: 7, maxConnections: 9 });

    const later = slug('cache');
    expect(await cached.find(later)).toBeNull();
    await cached.add({ slug: later, ...storage() });
    expect((await cached.find(later))?.slug).toBe(later);
  });

  it('finds many orgs at once: the registered ones by slug, over several statements, and caches them', async () => {
    const slugs = Array.from({ length: 1203 }, () => slug('many'));
    const registered = slugs.filter((_, i) => i % 3 !== 1);
    for (const each of registered) await registry.add({ slug: each, ...storage() });
    const asked = [...slugs, 'Not A Slug', registered[0]!];
    const found = await registry.findMany(asked);
    expect([...found.keys()].sort()).toEqual([...registered].sort());
    expect(found.get(registered[5]!)).toEqual(await registry.get(registered[5]!));
    await registry.deactivate(registered[0]!);
    expect((await registry.findMany([registered[0]!])).get(registered[0]!)?.active).toBe(false);

    // Through a caching registry: findMany fills the cache that get and find answer from.
    await using cached = await OrgRegistry.open(store.url, { cacheTtlMs: 600_000 });
    expect((await cached.findMany(registered.slice(0, 3))).size).toBe(3);
    await registry.update(registered[1]!, { weight: 5 });
    expect((await cached.get(registered[1]!)).weight).toBe(1);
    expect(await cached.find(slugs[1]!)).toBeNull();
    // A change made through the cached registry forgets what findMany cached.
    await cached.update(registered[2]!, { weight: 3 });
    expect((await cached.findMany([registered[1]!])).get(registered[1]!)?.weight).toBe(5);
  });

  it('provisions a database-mode tenant through its secret reference, idempotently', async () => {
    const name = uniqueName('fleet_tenant');
    tenantDatabases.push(name);
    const variable = uniqueName('FLEET_TENANT').toUpperCase();
    env[variable] = dbCase.tenantUrl(name);
    const org = await registry.add({
      slug: slug('prov'),
      storageMode: 'database',
      databaseUrl: `env://${variable}`,
    });

    expect(await dbCase.tenantExists(name)).toBe(false);
    const [first, second] = await Promise.all([registry.provision(org.slug), registry.provision(org.slug)]);
    expect(await dbCase.tenantExists(name)).toBe(true);
    expect([first.created, second.created].sort()).toEqual([false, true]);
    expect(first).toMatchObject({ slug: org.slug, storageMode: 'database', kind: dbCase.name });
    expect(JSON.stringify(first)).not.toContain(env[variable]);
    expect((await registry.provision(org.slug)).created).toBe(false);
  });

  it('accepts schema mode only on a Postgres registry, and provisions the schema idempotently', async () => {
    const input: OrgInput = { slug: slug('schm'), storageMode: 'schema' };
    if (dbCase.name !== 'postgres') {
      await expectRejectedAdd(input, 'storageMode');
      const db = await registry.add({ slug: slug('schm'), storageMode: 'database', databaseUrl: 'env://X' });
      const err = await rejection(() => registry.update(db.slug, { storageMode: 'schema' }), ValidationError);
      expect(err.field).toBe('storageMode');
      expect(await registry.get(db.slug)).toEqual(db);
      return;
    }
    const org = await registry.add(input);
    await using other = await OrgRegistry.open(store.url);
    const results = await Promise.all([registry.provision(org.slug), other.provision(org.slug)]);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(results[0]).toMatchObject({ storageMode: 'schema', target: org.schemaName });
    expect(await schemaExists(org.schemaName!)).toBe(true);
    expect((await registry.provision(org.slug)).created).toBe(false);
  });

  // Only a Postgres registry calls this: pg_namespace is where its schemas live.
  async function schemaExists(name: string): Promise<boolean> {
    const conn = await connect(store.url);
    try {
      return (await conn.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [name])).length > 0;
    } finally {
      await conn.close();
    }
  }

  it('a tenant server that refuses connections fails provision with a TenantConnectionError naming the tenant and server, not the password', async () => {
    const server = net.createServer().listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as net.AddressInfo;
    server.close();
    await once(server, 'close');
    for (const scheme of ['postgres', 'mysql']) {
      const org = await registry.add({
        slug: slug('refused'),
        storageMode: 'database',
        databaseUrl: `${scheme}://app:pw-S3cret-77@127.0.0.1:${port}/tenant`,
      });
      const err = await rejection(() => registry.provision(org.slug), TenantConnectionError);
      expect(err.slug).toBe(org.slug);
      expect(err.message).toBe(
        `Expected tenant ${JSON.stringify(org.slug)}'s database at 127.0.0.1:${port} to accept a connection, got connect ECONNREFUSED 127.0.0.1:${port}`,
      );
      for (const text of [err.message, String(err.stack), inspect(err)])
        expect(text).not.toContain('pw-S3cret-77');
    }
  });

  it('provision throws UnknownTenantError for an unregistered slug', async () => {
    await rejection(() => registry.provision(slug('ghost')), UnknownTenantError);
  });

  it('closes idempotently and refuses use after close', async () => {
    const r = await OrgRegistry.open(store.url);
    await r.count();
    await Promise.all([r.close(), r.close()]);
    await r.close();
    await rejection(() => r.get('acme'), ClosedError);
    await rejection(() => r.list(), ClosedError);
    await rejection(() => r.add({ slug: slug(), ...storage() }), ClosedError);
  });

  it('rejects bad list, count and open options with a typed error naming the option', async () => {
    for (const [options, field] of [
      [{ limit: 0 }, 'limit'],
      [{ limit: 2.5 }, 'limit'],
      [{ after: 5 }, 'after'],
      [{ active: 'yes' }, 'active'],
    ] as const) {
      const err = await rejection(() => registry.list(options as never), ValidationError);
      expect(err.field).toBe(field);
    }
    expect((await rejection(() => registry.count({ active: 1 } as never), ValidationError)).field).toBe(
      'active',
    );
    // Durations past what a timer holds (2^31 - 1 ms) would fire at once.
    for (const options of [
      { cacheTtlMs: -1 },
      { connectTimeoutMs: 0 },
      { closeTimeoutMs: 1.5 },
      { cacheTtlMs: 3_000_000_000 },
      { connectTimeoutMs: 3_000_000_000 },
      { closeTimeoutMs: 2_147_483_648 },
    ]) {
      const err = await rejection(() => OrgRegistry.open(store.url, options), ConfigError);
      expect(err.option).toBe(Object.keys(options)[0]);
    }
  });

  it('replaces a connection the server ended, without the next read seeing an error', async () => {
    const org = await registry.add({ slug: slug('revive'), ...storage() });
    const count = await registry.count();
    const killed = await store.killSessions();
    if (dbCase.name !== 'sqlite') expect(killed).toBeGreaterThanOrEqual(1);
    expect(await registry.count()).toBe(count);
    expect(await registry.get(org.slug)).toEqual(org);
    await registry.update(org.slug, { weight: 2 });
    expect((await registry.get(org.slug)).weight).toBe(2);
  });

  describe('bad input: a typed error and nothing written', () => {
    it.each([
      ['upper case', 'Acme'],
      ['a space', 'ac me'],
      ['a quote', "ac'me"],
      ['../', '../acme'],
      ['empty', ''],
      ['over 63 characters', 'a'.repeat(64)],
    ])('slug with %s', async (_what, bad) => {
      await expectRejectedAdd({ slug: bad, ...storage() }, 'slug');
      await rejection(() => registry.get(bad), UnknownTenantError);
    });

    it('schema name a"; drop schema public; --', async () => {
      const evil = 'a"; drop schema public; --';
      await expectRejectedAdd({ slug: slug('evil'), storageMode: 'schema', schemaName: evil }, 'schemaName');
      if (dbCase.name === 'postgres') {
        expect(await schemaExists('public')).toBe(true);
        expect(await schemaExists(evil)).toBe(false);
      }
    });

    it('unknown storage mode', async () => {
      const input = { slug: slug('mode'), storageMode: 'shard' } as unknown as OrgInput;
      await expectRejectedAdd(input, 'storageMode');
    });

    it('database mode without databaseUrl', async () => {
      await expectRejectedAdd({ slug: slug('nourl'), storageMode: 'database' }, 'databaseUrl');
      await expectRejectedAdd(
        { slug: slug('nourl'), storageMode: 'database', databaseUrl: '' },
        'databaseUrl',
      );
    });

    it('duplicate slug', async () => {
      const org = await registry.add({ slug: slug('dup'), weight: 2, ...storage() });
      const err = await expectRejectedAdd({ slug: org.slug, weight: 5, ...storage() }, 'slug');
      expect(err.message).toContain(org.slug);
      expect(await registry.get(org.slug)).toEqual(org);
    });

    it.each([0, 1.5])('weight %s', async (weight) => {
      await expectRejectedAdd({ slug: slug('w'), weight, ...storage() }, 'weight');
    });

    it('env://MISSING as the database reference', async () => {
      const org = await registry.add({
        slug: slug('miss'),
        storageMode: 'database',
        databaseUrl: 'env://MISSING',
      });
      const before = await registry.list();
      const err = await rejection(() => registry.provision(org.slug), SecretResolutionError);
      expect(err.message).toContain('MISSING');
      expect(err.reference).toBe('env://MISSING');
      expect(await registry.list()).toEqual(before);
    });

    it('an unreadable file:// reference', async () => {
      const dir = scratch();
      const missing = join(dir, 'no-such-secret');
      for (const ref of [`file://${missing}`, `file://${dir}`]) {
        const org = await registry.add({ slug: slug('file'), storageMode: 'database', databaseUrl: ref });
        const err = await rejection(() => registry.provision(org.slug), SecretResolutionError);
        expect(err.message).toContain(ref.slice('file://'.length));
        expect(existsSync(missing)).toBe(false);
      }
    });

    it('an unsupported URL scheme, for the registry and for a tenant database', async () => {
      const file = join(scratch(), 'registry.db');
      for (const url of [`sqlite3:${file}`, 'redis://127.0.0.1:6379', 'http://app:s3cret@db/x', file]) {
        const err = await rejection(() => OrgRegistry.open(url), ConfigError);
        expect(err.message).not.toContain('s3cret');
      }
      expect(existsSync(file)).toBe(false);

      const name = uniqueName('fleet_tenant');
      const org = await registry.add({
        slug: slug('scheme'),
        storageMode: 'database',
        databaseUrl: `mongodb://app:s3cret@127.0.0.1/${name}`,
      });
      const err = await rejection(() => registry.provision(org.slug), ConfigError);
      expect(err.message).toContain('mongodb');
      expect(err.message).not.toContain('s3cret');
      expect(await dbCase.tenantExists(name)).toBe(false);
    });
  });
});
