/** `tenant-fleet purge --queue q [--tenant t]`: remove a queue's jobs from Redis. */
import { Command } from 'commander';
import { ConfigError } from '../../reporting/errors.js';
import { configFor, print } from '../context.js';
import { engineFor } from '../engine-for.js';

/** The `purge` command. */
export function purgeCommand(): Command {
  return new Command('purge')
    .description(
      "remove every job of a queue (bullmq or pgboss engine), or only one tenant's partition of it, whatever its state",
    )
    .requiredOption('--queue <name>', 'the queue, e.g. reports')
    .option('--tenant <slug>', "only this tenant's jobs")
    .option('--json', 'print the purged tenants as JSON')
    .addHelpText(
      'after',
      '\nFor a queue no longer fed or a tenant that was removed: a job enqueued meanwhile may go too, and a worker still running one of the jobs finds its lock lost.',
    )
    .action(async (flags: { queue: string; tenant?: string; json?: boolean }, command: Command) => {
      const config = await configFor(command);
      if (config.engine === 'memory') {
        throw new ConfigError(
          'engine',
          "Expected engine 'bullmq' or 'pgboss' to purge from the command line (memory-engine jobs live only in their own process), got 'memory'",
        );
      }
      const engine = await engineFor(config);
      try {
        const tenants = await engine.purge(flags.queue, flags.tenant);
        if (flags.json) print(JSON.stringify({ queue: flags.queue, tenants }));
        else
          print(
            tenants.length === 0
              ? `nothing to purge in ${flags.queue}${flags.tenant ? ` for ${flags.tenant}` : ''}`
              : `purged ${flags.queue} for ${tenants.join(', ')}`,
          );
      } finally {
        await engine.close();
      }
    });
}
