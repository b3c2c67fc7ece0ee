/** `tenant-fleet orgs add|list|update|deactivate|remove` and `tenant-fleet provision`. */

import { Command, Option } from 'commander';
import type { QueueEngine } from '../../queue/engine.js';
import {
  ClosedError,
  ConfigError,
  DatabaseConnectionError,
  redactUrl,
  UnknownTenantError,
  ValidationError,
} from '../../reporting/errors.js';
import { databaseKindOf } from '../../tenancy/drivers/driver.js';
import type { Org, OrgInput, OrgPatch } from '../../tenancy/org.js';
import { publicOrg } from '../../tenancy/org.js';
import { requireRegistryUrl } from '../config/config.js';
import { cliLogger, configFor, openRegistry, print, printJson } from '../context.js';
import { engineFor } from '../engine-for.js';
import { integer, integerOrNone, noneAsNull, oneOf } from '../parse.js';
import { checkRedis } from '../process/preflight.js';

interface OrgFlags {
  mode?: 'schema' | 'database';
  databaseUrl?: string;
  schema?: string;
  weight?: number;
  maxConcurrency?: number | 'none';
  maxConnections?: number | 'none';
  inactive?: boolean;
  provision?: boolean;
  json?: boolean;
}

/**
 * Runs `fn` with the registry the command's configuration names, then closes it. Only
 * `create` (orgs add) makes the registry's table where it is missing: the other commands
 * act on orgs that must already be there (openRegistry).
 */
async function withRegistry<T>(
  command: Command,
  fn: (registry: Awaited<ReturnType<typeof openRegistry>>) => Promise<T>,
  { create = false }: { create?: boolean } = {},
): Promise<T> {
  const config = await configFor(command);
  const registry = await openRegistry(config, cliLogger(config), { create });
  try {
    return await fn(registry);
  } finally {
    await registry.close();
  }
}

function describeOrg(org: Org): string {
  const safe = publicOrg(org);
  const where = safe.storageMode === 'schema' ? `schema ${safe.schemaName}` : `database ${safe.databaseUrl}`;
  const limits = [
    `weight ${safe.weight}`,
    safe.maxConcurrency === null ? null : `maxConcurrency ${safe.maxConcurrency}`,
    safe.maxConnections === null ? null : `maxConnections ${safe.maxConnections}`,
  ].filter(Boolean);
  return `${safe.slug}\t${safe.active ? 'active' : 'inactive'}\t${where}\t${limits.join(', ')}`;
}

function output(org: Org, json: boolean | undefined): void {
  if (json) printJson(publicOrg(org));
  else print(describeOrg(org));
}

/** The `orgs` command group. */
export function orgsCommand(): Command {
  const orgs = new Command('orgs').description(
    'add, list, update, deactivate and remove tenants in the registry',
  );

  orgs
    .command('add')
    .description('register a tenant (schema mode needs a Postgres registry)')
    .argument('<slug>', 'the tenant slug: a-z, 0-9, - and _, 1–63 characters')
    .option('--mode <mode>', 'storage mode: schema or database', oneOf(['schema', 'database'] as const))
    .option('--database-url <url>', 'database mode: the URL or secret reference (env://NAME, file:///path)')
    .option('--schema <name>', 'schema mode: the schema name (default: the slug with - turned to _)')
    .option('--weight <n>', 'fair-share weight', integer(1))
    .option(
      '--max-concurrency <n>',
      "jobs of this tenant running at once across the fleet, or none for the queue's default",
      integerOrNone,
    )
    .option('--max-connections <n>', "this tenant's pool size, or none for the default", integerOrNone)
    .option('--inactive', 'register it deactivated')
    .option('--provision', 'also create its schema or database')
    .option('--json', 'print the org as JSON')
    .action(async (slug: string, flags: OrgFlags, command: Command) => {
      // The mode meant: --database-url names a database of the tenant's own, --schema a
      // schema; with neither, schema mode, the default, which needs a Postgres registry
      // (checked before the registry is opened, which would create it).
      const mode = flags.mode ?? (flags.databaseUrl ? 'database' : flags.schema ? 'schema' : undefined);
      if (mode === undefined) {
        const kind = databaseKindOf(requireRegistryUrl(await configFor(command)));
        if (kind !== 'postgres')
          throw new ConfigError(
            'mode',
            `Expected --mode database and --database-url <url> on a ${kind} registry (schema mode, the default, needs a Postgres registry), got neither`,
          );
      }
      await withRegistry(
        command,
        async (registry) => {
          const input: OrgInput = {
            slug,
            ...(mode ? { storageMode: mode } : {}),
            ...(flags.databaseUrl ? { databaseUrl: flags.databaseUrl } : {}),
            ...(flags.schema ? { schemaName: flags.schema } : {}),
            ...(flags.weight ? { weight: flags.weight } : {}),
            ...(flags.maxConcurrency !== undefined
              ? { maxConcurrency: noneAsNull(flags.maxConcurrency) }
              : {}),
            ...(flags.maxConnections !== undefined
              ? { maxConnections: noneAsNull(flags.maxConnections) }
              : {}),
            ...(flags.inactive ? { active: false } : {}),
          };
          const org = await registry.add(input);
          output(org, flags.json);
          if (flags.provision) {
            const result = await registry.provision(slug).catch((err: unknown) => {
              // The org stays registered: say so, and how to finish or undo it.
              const what = org.storageMode === 'schema' ? 'schema' : 'database';
              const why = err instanceof Error ? err.message : String(err);
              throw new Error(
                `tenant ${slug} is registered but its ${what} was not created (${why}): run \`tenant-fleet provision ${slug}\` once its database server answers, or \`tenant-fleet orgs remove ${slug}\``,
                { cause: err },
              );
            });
            if (!flags.json)
              print(
                `provisioned ${result.storageMode} ${result.target}${result.created ? '' : ' (existed)'}`,
              );
          }
        },
        { create: true },
      );
    });

  orgs
    .command('list')
    .description('list tenants ordered by slug')
    .addOption(new Option('--active', 'only active tenants').conflicts('inactive'))
    .addOption(new Option('--inactive', 'only deactivated tenants').conflicts('active'))
    .option('--after <slug>', 'start after this slug (paging)')
    .option('--limit <n>', 'at most this many', integer(1))
    .option('--json', 'one JSON object per line')
    .action(
      async (
        flags: { active?: boolean; inactive?: boolean; after?: string; limit?: number; json?: boolean },
        command: Command,
      ) => {
        await withRegistry(command, async (registry) => {
          const active = flags.active ? true : flags.inactive ? false : undefined;
          const orgs = await registry.list({
            ...(active === undefined ? {} : { active }),
            ...(flags.after ? { after: flags.after } : {}),
            ...(flags.limit ? { limit: flags.limit } : {}),
          });
          for (const org of orgs) output(org, flags.json);
          if (!flags.json) process.stderr.write(`${orgs.length} org${orgs.length === 1 ? '' : 's'}\n`);
        });
      },
    );

  orgs
    .command('update')
    .description("change a tenant's settings (never its slug)")
    .argument('<slug>', 'the tenant slug')
    .option('--weight <n>', 'fair-share weight', integer(1))
    .option('--max-concurrency <n>', 'jobs running at once across the fleet, or none', integerOrNone)
    .option('--max-connections <n>', 'pool size, or none for the default', integerOrNone)
    .option('--database-url <url>', 'database mode: the URL or secret reference')
    .option('--activate', 'reactivate a deactivated tenant')
    .option('--json', 'print the org as JSON')
    .action(async (slug: string, flags: OrgFlags & { activate?: boolean }, command: Command) => {
      await withRegistry(command, async (registry) => {
        const patch: OrgPatch = {
          ...(flags.weight !== undefined ? { weight: flags.weight } : {}),
          ...(flags.maxConcurrency !== undefined ? { maxConcurrency: noneAsNull(flags.maxConcurrency) } : {}),
          ...(flags.maxConnections !== undefined ? { maxConnections: noneAsNull(flags.maxConnections) } : {}),
          ...(flags.databaseUrl !== undefined ? { databaseUrl: flags.databaseUrl } : {}),
          ...(flags.activate ? { active: true } : {}),
        };
        output(await registry.update(slug, patch), flags.json);
      });
    });

  orgs
    .command('deactivate')
    .description('deactivate a tenant: no new jobs, no fan-outs')
    .argument('<slug>', 'the tenant slug')
    .option('--json', 'print the org as JSON')
    .action(async (slug: string, flags: { json?: boolean }, command: Command) => {
      await withRegistry(command, async (registry) => output(await registry.deactivate(slug), flags.json));
    });

  orgs
    .command('remove')
    .description("remove a tenant's row from the registry (its schema or database is kept)")
    .argument('<slug>', 'the tenant slug')
    .option('--purge-jobs', 'also remove its jobs from every queue (bullmq or pgboss engine)')
    .option('--json', 'print the removed org (and the purged queues) as JSON')
    .addHelpText(
      'after',
      "\nThe tenant's schema or database is not dropped: drop it yourself once you no longer need its data.",
    )
    .action(async (slug: string, flags: { purgeJobs?: boolean; json?: boolean }, command: Command) => {
      const config = await configFor(command);
      if (flags.purgeJobs) {
        if (config.engine === 'memory') {
          throw new ConfigError(
            'engine',
            "Expected engine 'bullmq' or 'pgboss' for --purge-jobs (memory-engine jobs live only in their own process), got 'memory'",
          );
        }
        // Before the row goes, so an unreachable Redis leaves everything as it was.
        await checkRedis(config);
      }
      await withRegistry(command, async (registry) => {
        const org = await registry.remove(slug);
        const purged = flags.purgeJobs ? await purgeTenantJobs(config, slug) : null;
        if (flags.json) printJson({ ...publicOrg(org), ...(purged ? { purgedQueues: purged } : {}) });
        else {
          print(`removed ${slug} (its ${org.storageMode === 'schema' ? 'schema' : 'database'} is kept)`);
          if (purged)
            print(purged.length === 0 ? 'no jobs to purge' : `purged its jobs from ${purged.join(', ')}`);
        }
      });
    });

  return orgs;
}

/** Removes the tenant's partitions of every queue of the configured engine. */
async function purgeTenantJobs(
  config: Awaited<ReturnType<typeof configFor>>,
  slug: string,
): Promise<string[]> {
  // Both shared engines can purge a tenant from every queue at once.
  const engine = (await engineFor(config)) as QueueEngine & { purgeTenant(slug: string): Promise<string[]> };
  try {
    return await engine.purgeTenant(slug);
  } finally {
    await engine.close();
  }
}

/** `provision <slug...>` or `provision --all`: create tenants' schemas or databases. */
export function provisionCommand(): Command {
  return new Command('provision')
    .description('create the schema (schema mode) or database (database mode) of tenants; idempotent')
    .argument('[slugs...]', 'the tenants to provision')
    .option('--all', 'every active tenant')
    .option('--json', 'one JSON result per line')
    .action(async (slugs: string[], flags: { all?: boolean; json?: boolean }, command: Command) => {
      if (slugs.length === 0 && !flags.all)
        command.error('error: give tenant slugs or --all', { exitCode: 2 });
      await withRegistry(command, async (registry) => {
        const targets = [...slugs];
        if (flags.all) {
          let after: string | undefined;
          for (;;) {
            const page = await registry.list({ active: true, limit: 500, ...(after ? { after } : {}) });
            targets.push(...page.map((org) => org.slug));
            if (page.length < 500) break;
            after = page[page.length - 1]!.slug;
          }
        }
        // Every tenant is tried: one whose server does not answer is reported (a `failed`
        // line, as prewarm's) and the command exits 1 after the others.
        let failed = 0;
        for (const slug of targets) {
          let result: Awaited<ReturnType<typeof registry.provision>>;
          try {
            result = await registry.provision(slug);
          } catch (err) {
            // A slug that is bad or not registered, and a registry that no longer answers,
            // stop the command; what is the tenant's own (its server, secret, URL) does not.
            if (
              err instanceof ValidationError ||
              err instanceof UnknownTenantError ||
              err instanceof DatabaseConnectionError ||
              err instanceof ClosedError
            )
              throw err;
            failed += 1;
            const error = redactUrl(err instanceof Error ? err.message : String(err));
            if (flags.json) printJson({ slug, failed: true, error });
            else print(`failed\t${slug}\t${error}`);
            continue;
          }
          if (flags.json) printJson(result);
          else
            print(
              `${slug}\t${result.storageMode}\t${result.kind}\t${result.target}\t${result.created ? 'created' : 'existed'}`,
            );
        }
        if (failed > 0) {
          process.stderr.write(`error: ${failed} of ${targets.length} tenants were not provisioned\n`);
          process.exitCode = 1;
        }
      });
    });
}
