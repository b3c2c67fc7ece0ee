/** `tenant-fleet scheduler`: run the config's fan-out schedules until SIGINT/SIGTERM. */
import { Command } from 'commander';
import { SnapshotPublisher } from '../../metrics/snapshot-publisher.js';
import { ConfigError } from '../../reporting/errors.js';
import { cliLogger, configFor } from '../context.js';
import { integer } from '../parse.js';
import { waitForShutdown } from '../process/shutdown.js';

/** The `scheduler` command. */
export function schedulerCommand(): Command {
  return new Command('scheduler')
    .description(
      'fan jobs out to every active tenant on the cron schedules of the config (`schedules`); two schedulers may run at once',
    )
    .option('--page-size <n>', 'tenants read and enqueued per page', integer(1))
    .addHelpText(
      'after',
      '\nA schedule in fleet.config.json:\n  "schedules": [{ "id": "nightly-report", "cron": "0 3 * * *", "timezone": "Europe/Paris",\n                  "queue": "reports", "name": "nightly", "data": {}, "catchUp": "latest" }]',
    )
    .action(async (flags: { pageSize?: number }, command: Command) => {
      const shutdown = waitForShutdown();
      const config = await configFor(command);
      if (config.schedules.length === 0) {
        throw new ConfigError(
          'schedules',
          'Expected at least one entry in `schedules` of the config, got none',
        );
      }
      if (config.engine === 'memory') {
        throw new ConfigError(
          'engine',
          "Expected engine 'bullmq' or 'pgboss' for a scheduler process (memory-engine jobs never leave their process), got 'memory'; use `worker --schedules` to run schedules beside a memory-engine worker",
        );
      }
      const logger = cliLogger(config, 'info');
      const { openFleet } = await import('../open-fleet.js');
      const { startSchedules } = await import('../start-schedules.js');
      const handle = await openFleet(config, logger);
      // Snapshots of the schedules and their last fan-out, for the dashboard (no queues, no pools).
      const snapshots = new SnapshotPublisher({ engine: handle.fleet.engine });
      try {
        const running = await startSchedules(handle, config.schedules, flags.pageSize);
        snapshots.watchScheduler(running.scheduler);
        logger.info(
          {
            schedules: running.scheduler.schedules().map((s) => s.id),
            pageSize: flags.pageSize ?? 'default',
          },
          'scheduler running; SIGINT or SIGTERM stops it',
        );
        await shutdown;
        await running.close();
      } finally {
        await snapshots.close();
        await handle.close();
      }
      logger.info('scheduler stopped');
    });
}
