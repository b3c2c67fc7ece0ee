/**
 * Fixtures of the TenantPools suites: a registry in a database of its own, tenant
 * databases with unique names on the real Postgres and MariaDB servers, and a sampler that
 * counts, from the server's side, the connections open to a database.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type RawConnection } from '../../src/tenancy/drivers/index.js';
import type { OrgInput } from '../../src/tenancy/org.js';
import { OrgRegistry } from '../../src/tenancy/registry/org-registry.js';
import { MYSQL_URL, PG_URL, tempDir, uniqueName, withDatabase } from './services.js';

/** A registry on its own Postgres database, plus admin access to create tenant databases. */
export interface PgWorld {
  readonly registry: OrgRegistry;
  /** The registry database's name (schema-mode tenants live here). */
  readonly registryDb: string;
  readonly admin: RawConnection;
  /** Creates a Postgres database with a unique name; dropped by `cleanup()`. */
  createDatabase(prefix?: string): Promise<{ name: string; url: string }>;
  /** Adds orgs to the registry. */
  addOrgs(inputs: OrgInput[]): Promise<void>;
  /** Connections the server sees to `database`, other than the admin's and the registry's. */
  serverConnections(database: string): Promise<number>;
  /** Pids of the pool connections to `database` (excluding the admin's and the registry's). */
  serverPids(database: string): Promise<number[]>;
  cleanup(): Promise<void>;
}

/** Opens a fresh Postgres world: registry database migrated, nothing registered. */
export async function pgWorld(options: { cacheTtlMs?: number } = {}): Promise<PgWorld> {
  const admin = await connect(PG_URL);
  const databases: string[] = [];
  const createDatabase = async (prefix = 'tp') => {
    const name = uniqueName(prefix);
    await admin.query(`CREATE DATABASE "${name}"`);
    databases.push(name);
    return { name, url: withDatabase(PG_URL, name) };
  };
  const reg = await createDatabase('tp_reg');
  const registry = await OrgRegistry.open(reg.url, { cacheTtlMs: options.cacheTtlMs ?? 0 });
  await registry.migrate();
  // The registry's own connection is open now; remember its pid to leave it out of counts.
  const registryPids = (
    await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [reg.name])
  ).map((row) => row.pid);
  const serverPids = async (database: string) =>
    (
      await admin.query<{ pid: number }>(
        'SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND NOT (pid = ANY($2::int[]))',
        [database, registryPids],
      )
    ).map((row) => row.pid);
  return {
    registry,
    registryDb: reg.name,
    admin,
    createDatabase,
    async addOrgs(inputs) {
      for (const input of inputs) await registry.add(input);
    },
    serverPids,
    serverConnections: async (database) => (await serverPids(database)).length,
    async cleanup() {
      await registry.close();
      for (const name of databases) await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await admin.close();
    },
  };
}

/** A MariaDB database with a unique name, and a way to count its connections server-side. */
export interface MysqlDatabase {
  readonly name: string;
  readonly url: string;
  serverConnections(): Promise<number>;
  drop(): Promise<void>;
}

export async function mysqlDatabase(): Promise<MysqlDatabase> {
  const admin = await connect(MYSQL_URL);
  const name = uniqueName('tp');
  await admin.query(`CREATE DATABASE \`${name}\``);
  return {
    name,
    url: withDatabase(MYSQL_URL, name),
    serverConnections: async () =>
      Number(
        (
          await admin.query<{ n: number }>(
            'SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()',
            [name],
          )
        )[0]?.n ?? 0,
      ),
    async drop() {
      await admin.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await admin.close();
    },
  };
}

/** A temporary folder of SQLite tenant files. */
export function sqliteFolder(): { url(name: string): string; remove(): void } {
  const dir = tempDir('tenant-pools-');
  return {
    url: (name) => `sqlite:${join(dir, `${name}.db`)}`,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * Counts connections again and again (every `intervalMs`, or back to back), from a
 * connection of its own, until stopped; the largest count seen and the number of samples
 * are the result.
 */
export function sampleMax(
  count: () => Promise<number>,
  { intervalMs = 0 }: { intervalMs?: number } = {},
): {
  stop(): Promise<{ max: number; samples: number }>;
} {
  let stopped = false;
  let max = 0;
  let samples = 0;
  const loop = (async () => {
    while (!stopped) {
      max = Math.max(max, await count());
      samples++;
      if (intervalMs > 0) await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return { max, samples };
    },
  };
}

/** `n` tenant slugs with a unique prefix, in slug order. */
export function slugs(prefix: string, n: number): string[] {
  const base = uniqueName(prefix).replaceAll('_', '-');
  return Array.from({ length: n }, (_, i) => `${base}-${String(i).padStart(3, '0')}`);
}

/** Registers `n` database-mode tenants, all on the database at `url`; resolves to their slugs. */
export async function addDatabaseTenants(
  world: PgWorld,
  url: string,
  prefix: string,
  n: number,
): Promise<string[]> {
  const names = slugs(prefix, n);
  await world.addOrgs(names.map((slug) => ({ slug, storageMode: 'database', databaseUrl: url })));
  return names;
}

/** Polls `condition` every 2 ms until it holds (the test's own timeout bounds the wait). */
