/** `tenant-fleet prewarm`: open every active tenant's pool once and report. */
import { Command } from 'commander';
import { cliLogger, configFor, openRegistry, print } from '../context.js';

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
        const pools = await TenantPools.open({ registry, maxConnections: config.budget, logger });
        try {
          const report = await pools.prewarm();
          if (flags.json) print(JSON.stringify(report));
          else
            print(
              `${report.totalActive} active tenants: ${report.warmed} warmed, ${report.failed} failed, ${report.skippedCap} skipped (budget or pool cap)`,
            );
          if (report.failed > 0) process.exitCode = 1;
        } finally {
          await pools.close();
        }
      } finally {
        await registry.close();
      }
    });
}
