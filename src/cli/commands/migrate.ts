/** `tenant-fleet migrate --dir migrations/`: numbered SQL files on every active tenant. */
import { Command } from 'commander';
import { loadMigrations } from '../../scheduler/migration-files.js';
import { migrateTenants } from '../../scheduler/tenant-migrations.js';
import { cliLogger, configFor, print, printJson } from '../context.js';
import { integer } from '../parse.js';

/** The `migrate` command. */
export function migrateCommand(): Command {
  return new Command('migrate')
    .description(
      'run a directory of numbered SQL files (001_create_x.sql …) on every active tenant, one job per tenant; a rerun applies only new files',
    )
    .requiredOption('--dir <path>', 'the migrations directory')
    .option('--concurrency <n>', 'tenants migrated at once by this process', integer(1))
    .option(
      '--stall-timeout <ms>',
      'give up on tenants whose job made no progress for this long (default 120000)',
      integer(1),
    )
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      '\nExit code 1 when any tenant failed (each failure is listed with its error); the others are migrated.',
    )
    .action(
      async (
        flags: { dir: string; concurrency?: number; stallTimeout?: number; json?: boolean },
        command: Command,
      ) => {
        const config = await configFor(command);
        const migrations = loadMigrations(flags.dir);
        const logger = cliLogger(config);
        const { openFleet } = await import('../open-fleet.js');
        const handle = await openFleet(config, logger);
        try {
          logger.info(
            {
              dir: flags.dir,
              versions: migrations.map((m) => m.version),
              concurrency: flags.concurrency ?? 'default',
              stallTimeoutMs: flags.stallTimeout ?? 'default',
            },
            'migrating every active tenant',
          );
          const report = await migrateTenants(handle.fleet, {
            migrations,
            ...(flags.concurrency ? { concurrency: flags.concurrency } : {}),
            ...(flags.stallTimeout ? { stallTimeoutMs: flags.stallTimeout } : {}),
            onProgress: (p) =>
              process.stderr.write(
                `progress: ${p.completed + p.failed}/${p.total} done, ${p.failed} failed\n`,
              ),
          });
          if (flags.json) {
            printJson(report);
          } else {
            print(`migrations: ${report.versions.join(', ') || 'none'} (batch ${report.batchId})`);
            for (const { tenant, applied } of report.migrated)
              print(`migrated\t${tenant}\t${applied.join(', ')}`);
            for (const tenant of report.upToDate) print(`up-to-date\t${tenant}`);
            for (const { tenant, versions } of report.changed)
              print(`changed\t${tenant}\t${versions.join(', ')} edited after they ran (not rerun)`);
            for (const failure of report.failed)
              print(`failed\t${failure.tenant}\t${failure.version ?? '-'}\t${failure.error}`);
            print(
              `${report.migrated.length} migrated, ${report.upToDate.length} up to date, ${report.failed.length} failed`,
            );
          }
          if (report.failed.length > 0) process.exitCode = 1;
        } finally {
          await handle.close();
        }
      },
    );
}
