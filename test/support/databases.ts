/**
 * The three registry database kinds as test fixtures: each can make a fresh, empty store (its
 * own Postgres or MySQL database, or a SQLite file in a temp folder) and a tenant database
 * on the same server, check that one exists, and drop them again.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type DatabaseKind, type RawConnection } from '../../src/tenancy/drivers/index.js';
import { MYSQL_URL, PG_URL, tempDir, uniqueName, withDatabase } from './services.js';

/** A fresh, empty database for one registry. */
export interface Store {
  readonly url: string;
  /** Ends every server session connected to this store (as a restart would); returns how many. */
  killSessions(): Promise<number>;
  drop(): Promise<void>;
}

export interface DatabaseCase {
  readonly name: DatabaseKind;
  /** A new empty database (or SQLite file) with a unique name. */
  createStore(): Promise<Store>;
  /** The URL a tenant database called `name` would have on this kind of server. */
  tenantUrl(name: string): string;
  tenantExists(name: string): Promise<boolean>;
  dropTenant(name: string): Promise<void>;
  /** Closes the admin connection. */
  close(): Promise<void>;
}

function lazyAdmin(url: string): { get(): Promise<RawConnection>; close(): Promise<void> } {
  let admin: Promise<RawConnection> | undefined;
  return {
    get: () => {
      admin ??= connect(url);
      return admin;
    },
    close: async () => {
      if (admin) await (await admin).close();
    },
  };
}

export function postgresCase(): DatabaseCase {
  const admin = lazyAdmin(PG_URL);
  const exists = async (name: string) =>
    (await (await admin.get()).query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).length > 0;
  const drop = async (name: string) => {
    await (await admin.get()).query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  };
  return {
    name: 'postgres',
    async createStore() {
      const name = uniqueName('fleet_reg');
      await (await admin.get()).query(`CREATE DATABASE "${name}"`);
      const killSessions = async () => {
        const rows = await (await admin.get()).query(
          'SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
          [name],
        );
        return rows.length;
      };
      return { url: withDatabase(PG_URL, name), killSessions, drop: () => drop(name) };
    },
    tenantUrl: (name) => withDatabase(PG_URL, name),
    tenantExists: exists,
    dropTenant: drop,
    close: admin.close,
  };
}

export function mysqlCase(): DatabaseCase {
  const admin = lazyAdmin(MYSQL_URL);
  const exists = async (name: string) =>
    (
      await (
        await admin.get()
      ).query('SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [name])
    ).length > 0;
  const drop = async (name: string) => {
    await (await admin.get()).query(`DROP DATABASE IF EXISTS \`${name}\``);
  };
  return {
    name: 'mysql',
    async createStore() {
      const name = uniqueName('fleet_reg');
      await (await admin.get()).query(`CREATE DATABASE \`${name}\``);
      const killSessions = async () => {
        const conn = await admin.get();
        const rows = await conn.query<{ id: number }>(
          'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()',
          [name],
        );
        for (const row of rows) await conn.query(`KILL ${Number(row.id)}`).catch(() => {});
        return rows.length;
      };
      return { url: withDatabase(MYSQL_URL, name), killSessions, drop: () => drop(name) };
    },
    tenantUrl: (name) => withDatabase(MYSQL_URL, name),
    tenantExists: exists,
    dropTenant: drop,
    close: admin.close,
  };
}

export function sqliteCase(): DatabaseCase {
  const dir = tempDir('tenant-fleet-registry-');
  const file = (name: string) => join(dir, `${name}.db`);
  return {
    name: 'sqlite',
    async createStore() {
      const path = file(uniqueName('fleet_reg'));
      return {
        url: `sqlite:${path}`,
        // A SQLite file has no server and no sessions to end.
        killSessions: async () => 0,
        drop: async () => {
          for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
        },
      };
    },
    tenantUrl: (name) => `sqlite:${file(name)}`,
    tenantExists: async (name) => existsSync(file(name)),
    dropTenant: async (name) => {
      for (const suffix of ['', '-wal', '-shm']) rmSync(`${file(name)}${suffix}`, { force: true });
    },
    close: async () => rmSync(dir, { recursive: true, force: true }),
  };
}
