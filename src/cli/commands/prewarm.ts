/** `tenant-fleet prewarm`: open every active tenant's pool once and report. */
import { Command } from 'commander';
import { redactUrl } from '../../reporting/errors.js';
import { requirePgbossUrl } from '../config/config.js';
import { fleetBudgetOptions } from '../config/fleet-budget-config.js';
import { cliLogger, configFor, openRegistry, print, printJson } from '../context.js';

/** The `prewarm` command. */
export function prewarmCommand(): Command {
  return new Command('prewarm')
    .description(
      "open a connection to every active tenant's database within the budget, and print the PrewarmReport",
    )
    .option('--json', 'print the report as JSON')
    .action(async (flags: { json?: boolean }, command: Command) => {
      const config = await configFor(command);
      const logger = cliLogger(config);
      const registry = await openRegistry(config, logger);
      try {
        const { TenantPools } = await import('../../tenancy/tenant-pools/tenant-pools.js');
        const fleetBudget = fleetBudgetOptions(config, () => requirePgbossUrl(config));
        const pools = await TenantPools.open({
          registry,
          maxConnections: config.budget,
          ...(fleetBudget ? { fleetBudget } : {}),
          logger,
        });
        // The report only counts failures; the pools' error events say which tenant and why.
        const failures: { tenant: string; error: string }[] = [];
        pools.on('error', ({ slug, error }) => {
          if (slug !== null) failures.push({ tenant: slug, error: redactUrl(error.message) });
        });
        try {
          const report = await pools.prewarm();
          if (flags.json) printJson({ ...report, failures });
          else {
            for (const { tenant, error } of failures) print(`failed\t${tenant}\t${error}`);
            print(
              `${report.totalActive} active tenants: ${report.warmed} warmed, ${report.failed} failed, ${report.skippedCap} skipped (budget or pool cap)`,
            );
          }
          if (report.failed > 0) process.exitCode = 1;
        } finally {
          await pools.close();
        }
      } finally {
        await registry.close();
      }
    });
}
