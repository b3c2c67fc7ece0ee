/**
 * Bad input to the registry, one row each: `OrgRegistry.open`, `add`, `update` and
 * `provision`. Every row names the error class and the field (or option) it must report;
 * after each, no org row, schema or database was created and an existing org is
 * unchanged. Connection failures of `open` are a `DatabaseConnectionError` with the
 * driver's error as `cause` and no password in the message.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  DatabaseConnectionError,
  FleetError,
  SecretResolutionError,
  UnknownTenantError,
  ValidationError,
} from '../../src/reporting/errors.js';
import { connect, type RawConnection } from '../../src/tenancy/drivers/index.js';
import type { OrgInput } from '../../src/tenancy/org.js';
import { OrgRegistry, type OrgRegistryOptions } from '../../src/tenancy/registry/org-registry.js';
import { ChainSecretsResolver } from '../../src/tenancy/secrets.js';
import { type DatabaseCase, mysqlCase, postgresCase, type Store, sqliteCase } from '../support/databases.js';
import { closedPort } from '../support/net.js';
import { MYSQL_URL, PG_URL, uniqueName, withDatabase } from '../support/services.js';
import { type ErrorClass, fieldOf } from './support.js';

async function caught(fn: () => Promise<unknown>): Promise<unknown> {
  return fn().then(
    () => undefined,
    (e: unknown) => e,
  );
}

const PASSWORD = 'Zx7PwAz9q';

describe('OrgRegistry.open bad input', () => {
  const missingPg = uniqueName('fleet_nodb');
  const missingMy = uniqueName('fleet_nodb');
  let refusedPort: number;
  let admin: RawConnection;

  beforeAll(async () => {
    refusedPort = await closedPort();
    admin = await connect(PG_URL);
  });
  afterAll(() => admin.close());

  const rows: Array<
    [label: string, url: () => unknown, options: OrgRegistryOptions, type: ErrorClass, field?: string]
  > = [
    ['url a number', () => 42, {}, ConfigError, 'url'],
    ['url of an unknown scheme', () => `http://u:${PASSWORD}@127.0.0.1/x`, {}, ConfigError, 'url'],
    ['sqlite: without a path', () => 'sqlite:', {}, ConfigError, 'url'],
    ['cacheTtlMs -1', () => PG_URL, { cacheTtlMs: -1 }, ConfigError, 'cacheTtlMs'],
    ['connectTimeoutMs 0', () => PG_URL, { connectTimeoutMs: 0 }, ConfigError, 'connectTimeoutMs'],
    [
      'closeTimeoutMs a string',
      () => PG_URL,
      { closeTimeoutMs: 'soon' as never },
      ConfigError,
      'closeTimeoutMs',
    ],
    [
      'postgres refusing connections',
      () => `postgres://postgres:${PASSWORD}@127.0.0.1:${refusedPort}/x`,
      {},
      DatabaseConnectionError,
    ],
    [
      'postgres without the database',
      () => withDatabase(PG_URL.replace('postgres@', `postgres:${PASSWORD}@`), missingPg),
      {},
      DatabaseConnectionError,
    ],
    [
      'mysql with a wrong password',
      () => MYSQL_URL.replace('root@', `root:${PASSWORD}@`),
      {},
      DatabaseConnectionError,
    ],
    ['mysql without the database', () => withDatabase(MYSQL_URL, missingMy), {}, DatabaseConnectionError],
    [
      'mysql refusing connections',
      () => `mysql://root:${PASSWORD}@127.0.0.1:${refusedPort}/x`,
      {},
      DatabaseConnectionError,
    ],
    ['sqlite file that cannot be made', () => 'sqlite:/dev/null/registry.db', {}, DatabaseConnectionError],
    [
      'a host that does not resolve',
      () => `postgres://postgres:${PASSWORD}@no-such-host.invalid/x`,
      { connectTimeoutMs: 5000 },
      DatabaseConnectionError,
    ],
  ];

  it.each(rows)('%s', async (_label, url, options, type, field) => {
    const err = await caught(() => OrgRegistry.open(url() as string, options));
    expect(err).toBeInstanceOf(type);
    expect(err).toBeInstanceOf(FleetError);
    expect(fieldOf(err)).toBe(field);
    expect((err as Error).message).toMatch(/^Expected /);
    expect(`${(err as Error).message}\n${(err as Error).stack}`).not.toContain(PASSWORD);
    if (type === DatabaseConnectionError) {
      expect((err as Error).cause).toBeInstanceOf(Error);
      expect((err as Error).cause).not.toBeInstanceOf(FleetError);
    }
    const dbs = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [missingPg]);
    expect(dbs).toEqual([]);
  });
});

const kinds: DatabaseCase[] = [postgresCase(), mysqlCase(), sqliteCase()];

describe.each(kinds)('OrgRegistry on $name: bad add, update and provision', (dbCase) => {
  const env: Record<string, string> = {};
  let store: Store;
  let registry: OrgRegistry;
  let admin: RawConnection;
  const postgres = dbCase.name === 'postgres';
  // Every org of this kind needs storage it accepts: a schema on Postgres, a database elsewhere.
  const base = (slug: string): OrgInput =>
    postgres ? { slug } : { slug, storageMode: 'database', databaseUrl: 'env://SOME_DB' };
  let existing: Awaited<ReturnType<OrgRegistry['add']>>;

  // What must not change after a rejected call: the rows, and on Postgres the schemas
  // and databases of the server.
  async function snapshot() {
    const rows = await registry.list();
    if (!postgres) return { rows };
    const schemas = await admin.query('SELECT schema_name FROM information_schema.schemata ORDER BY 1');
    // Other suites create and drop databases on the same server meanwhile, each named from
    // uniqueName (`<prefix>_<8 hex>`, or that plus `_<n>`); a row here could only create one
    // named otherwise.
    const dbs = await admin.query(
      "SELECT datname FROM pg_database WHERE datname !~ '_[0-9a-f]{8}(_[0-9]+)?$' ORDER BY 1",
    );
    return { rows, schemas, dbs };
  }

  beforeAll(async () => {
    store = await dbCase.createStore();
    const secrets = new ChainSecretsResolver({ env });
    registry = await OrgRegistry.open(store.url, { secrets, cacheTtlMs: 0 });
    await registry.migrate();
    admin = await connect(postgres ? store.url : PG_URL);
    existing = await registry.add(base('existing'));
  });

  afterAll(async () => {
    await admin?.close();
    await registry?.close();
    await store?.drop();
    await dbCase.close();
  });

  const addRows: Array<[label: string, input: unknown, field: string]> = [
    ['input null', null, 'org'],
    ['slug empty', { ...base('x'), slug: '' }, 'slug'],
    ['slug upper case', { ...base('x'), slug: 'Acme' }, 'slug'],
    ['slug starting with -', { ...base('x'), slug: '-a' }, 'slug'],
    ['slug of 64 characters', { ...base('x'), slug: 'a'.repeat(64) }, 'slug'],
    ['slug a number', { ...base('x'), slug: 5 }, 'slug'],
    ['slug taken', base('existing'), 'slug'],
    ['storageMode cloud', { ...base('x'), storageMode: 'cloud' }, 'storageMode'],
    ['database mode without databaseUrl', { slug: 'x', storageMode: 'database' }, 'databaseUrl'],
    [
      'database mode with a blank databaseUrl',
      { slug: 'x', storageMode: 'database', databaseUrl: ' ' },
      'databaseUrl',
    ],
    [
      'schemaName in database mode',
      { slug: 'x', storageMode: 'database', databaseUrl: 'env://A', schemaName: 'x' },
      'schemaName',
    ],
    ['active yes', { ...base('x'), active: 'yes' }, 'active'],
    ['weight 0', { ...base('x'), weight: 0 }, 'weight'],
    ['weight 1.5', { ...base('x'), weight: 1.5 }, 'weight'],
    ['weight NaN', { ...base('x'), weight: Number.NaN }, 'weight'],
    ['weight a string', { ...base('x'), weight: '3' }, 'weight'],
    ['weight 1001', { ...base('x'), weight: 1001 }, 'weight'],
    ['weight 2^53', { ...base('x'), weight: 2 ** 53 }, 'weight'],
    ['maxConcurrency 0', { ...base('x'), maxConcurrency: 0 }, 'maxConcurrency'],
    ['maxConcurrency 100001', { ...base('x'), maxConcurrency: 100_001 }, 'maxConcurrency'],
    ['maxConcurrency 2^53', { ...base('x'), maxConcurrency: 2 ** 53 }, 'maxConcurrency'],
    ['maxConnections -3', { ...base('x'), maxConnections: -3 }, 'maxConnections'],
    ['maxConnections 10001', { ...base('x'), maxConnections: 10_001 }, 'maxConnections'],
    ['maxConnections 2^53', { ...base('x'), maxConnections: 2 ** 53 }, 'maxConnections'],
    ...((postgres
      ? [
          ['databaseUrl in schema mode', { slug: 'x', databaseUrl: 'env://A' }, 'databaseUrl'],
          ['schemaName with upper case', { slug: 'x', schemaName: 'Acme' }, 'schemaName'],
          ['schemaName of 64 characters', { slug: 'x', schemaName: 's'.repeat(64) }, 'schemaName'],
          ['schemaName public', { slug: 'x', schemaName: 'public' }, 'schemaName'],
          ['schemaName pg_catalog', { slug: 'x', schemaName: 'pg_catalog' }, 'schemaName'],
          ['schemaName information_schema', { slug: 'x', schemaName: 'information_schema' }, 'schemaName'],
          ['schemaName pg_toast', { slug: 'x', schemaName: 'pg_toast' }, 'schemaName'],
          ['schemaName of another org', { slug: 'x', schemaName: 'existing' }, 'schemaName'],
          ['slug whose default schema is public', { slug: 'public' }, 'schemaName'],
          ['slug starting with a digit (no default schema)', { slug: '1acme' }, 'schemaName'],
        ]
      : [['schema mode', { slug: 'x', storageMode: 'schema' }, 'storageMode']]) as Array<
      [string, unknown, string]
    >),
  ];

  it.each(addRows)('add: %s → ValidationError', async (_label, input, field) => {
    const before = await snapshot();
    const err = await caught(() => registry.add(input as OrgInput));
    expect(err).toBeInstanceOf(ValidationError);
    expect(fieldOf(err)).toBe(field);
    expect((err as Error).message).toMatch(/^Expected /);
    expect(await snapshot()).toEqual(before);
  });

  const updateRows: Array<[label: string, slug: unknown, patch: unknown, type: ErrorClass, field?: string]> =
    [
      ['patch null', 'existing', null, ValidationError, 'patch'],
      ['slug in the patch', 'existing', { slug: 'other' }, ValidationError, 'slug'],
      ['slug not a slug', 'Existing!', { weight: 2 }, ValidationError, 'slug'],
      ['slug unknown', 'nobody', { weight: 2 }, UnknownTenantError],
      ['weight 2^53', 'existing', { weight: 2 ** 53 }, ValidationError, 'weight'],
      ['weight -1', 'existing', { weight: -1 }, ValidationError, 'weight'],
      ['maxConcurrency 2^53', 'existing', { maxConcurrency: 2 ** 53 }, ValidationError, 'maxConcurrency'],
      ['maxConnections 1e9', 'existing', { maxConnections: 1e9 }, ValidationError, 'maxConnections'],
      ['active 1', 'existing', { active: 1 }, ValidationError, 'active'],
      ['storageMode nope', 'existing', { storageMode: 'nope' }, ValidationError, 'storageMode'],
      ...((postgres
        ? [
            [
              'schemaName pg_catalog',
              'existing',
              { schemaName: 'pg_catalog' },
              ValidationError,
              'schemaName',
            ],
            ['schemaName public', 'existing', { schemaName: 'public' }, ValidationError, 'schemaName'],
          ]
        : [
            ['storageMode schema', 'existing', { storageMode: 'schema' }, ValidationError, 'storageMode'],
          ]) as Array<[string, unknown, unknown, ErrorClass, string]>),
    ];

  it.each(updateRows)('update: %s', async (_label, slug, patch, type, field) => {
    const before = await snapshot();
    const err = await caught(() => registry.update(slug as string, patch as never));
    expect(err).toBeInstanceOf(type);
    expect(fieldOf(err)).toBe(field);
    expect(await snapshot()).toEqual(before);
    expect(await registry.get('existing')).toEqual(existing);
  });

  it('provision: bad slug, unknown slug, unresolvable secret', async () => {
    await registry.add({
      slug: 'nosecret',
      storageMode: 'database',
      databaseUrl: 'env://FLEET_UNSET_SECRET',
    });
    const before = await snapshot();
    const rows: Array<[slug: unknown, type: ErrorClass, field?: string]> = [
      ['Bad!', ValidationError, 'slug'],
      [42, ValidationError, 'slug'],
      ['nobody', UnknownTenantError],
      ['nosecret', SecretResolutionError],
    ];
    for (const [slug, type, field] of rows) {
      const err = await caught(() => registry.provision(slug as string));
      expect(err, String(slug)).toBeInstanceOf(type);
      expect(fieldOf(err)).toBe(field);
    }
    expect(await snapshot()).toEqual(before);
  });
});
