/**
 * The demo's world under `.fleet/`: a SQLite registry, 20 tenants each with a SQLite
 * database of its own, and one migration creating the table the demo handler writes to.
 * Every step is idempotent, so a second `npm start` reuses what the first one made.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { OrgRegistry } from '../../tenancy/registry/org-registry.js';

/** The demo tenants; `noisy` floods its queue to show that the others are still served. */
export const DEMO_TENANTS = [
  'acme',
  'aperture',
  'black-mesa',
  'cyberdyne',
  'dunder-mifflin',
  'globex',
  'gringotts',
  'hooli',
  'initech',
  'monsters-inc',
  'noisy',
  'oscorp',
  'pied-piper',
  'soylent',
  'stark',
  'tyrell',
  'umbrella',
  'vandelay',
  'wayne',
  'wonka',
] as const;

/** The tenant that floods jobs. */
export const NOISY_TENANT = 'noisy';

/** The table every tenant gets from the demo migration, and the handler writes to. */
export const DEMO_TABLE = 'report_runs';

/**
 * The `sqlite3` command the demo suggests for looking at a tenant's rows while it runs.
 * It waits up to 5 s for a lock (`.timeout`): the fleet opens and closes connections to
 * each tenant's file all the time under the demo's small budget, and when the last one
 * of the process closes, SQLite checkpoints and removes the WAL under a brief exclusive
 * lock. A reader without a busy timeout (sqlite3's default is none) that opens at that
 * moment fails with "database is locked"; with one it waits those milliseconds out.
 */
export function sqliteReadCommand(dbPath: string): string {
  return `sqlite3 -cmd '.timeout 5000' ${dbPath} 'select count(*) from ${DEMO_TABLE}'`;
}

const MIGRATION = `-- Created by the tenant-fleet demo: one row per job the demo worker ran.
CREATE TABLE IF NOT EXISTS ${DEMO_TABLE} (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL,
  job_name TEXT NOT NULL,
  ran_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ${DEMO_TABLE}_ran_at ON ${DEMO_TABLE} (ran_at);
`;

/** Where the demo keeps its files. */
export interface DemoPaths {
  dir: string;
  registryUrl: string;
  tenantsDir: string;
  migrationsDir: string;
}

/** The demo's paths under `dir` (made by {@link prepareDemoDir}). */
export function demoPaths(dir: string): DemoPaths {
  const root = resolve(dir);
  return {
    dir: root,
    registryUrl: `sqlite:${join(root, 'registry.db')}`,
    tenantsDir: join(root, 'tenants'),
    migrationsDir: join(root, 'migrations'),
  };
}

/** Creates the demo's folders and its migration where they are missing. */
export function prepareDemoDir(paths: DemoPaths): void {
  mkdirSync(paths.tenantsDir, { recursive: true });
  mkdirSync(paths.migrationsDir, { recursive: true });
  const migration = join(paths.migrationsDir, '001_create_report_runs.sql');
  if (!existsSync(migration)) writeFileSync(migration, MIGRATION);
}

/** Registers the demo tenants that are missing and provisions each one's SQLite file. */
export async function seedDemoTenants(registry: OrgRegistry, paths: DemoPaths): Promise<{ added: number }> {
  let added = 0;
  for (const slug of DEMO_TENANTS) {
    if (!(await registry.find(slug))) {
      await registry.add({
        slug,
        storageMode: 'database',
        databaseUrl: `sqlite:${join(paths.tenantsDir, `${slug}.db`)}`,
        // acme pays for more: twice the share of a backlogged tenant.
        weight: slug === 'acme' ? 2 : 1,
      });
      added++;
    }
    await registry.provision(slug);
  }
  return { added };
}
