/** `tenant-fleet enqueue <queue> <tenant> <name>`: add one job. */
import { Command } from 'commander';
import { ConfigError } from '../../reporting/errors.js';
import { requirePgbossUrl } from '../config/config.js';
import { cliLogger, configFor, openRegistry, print } from '../context.js';
import { integer, json } from '../parse.js';
import { checkRedis } from '../process/preflight.js';

interface EnqueueFlags {
  data?: unknown;
  jobId?: string;
  delay?: number;
  priority?: number;
  attempts?: number;
}

/** The `enqueue` command. */
export function enqueueCommand(): Command {
  return new Command('enqueue')
    .description("add one job to a tenant's partition of a queue (bullmq or pgboss engine); prints its id")
    .argument('<queue>', 'the queue, e.g. reports')
    .argument('<tenant>', 'the tenant slug')
    .argument('<name>', 'the job name, e.g. render')
    .option('--data <json>', 'the job data as JSON', json)
    .option('--job-id <id>', 'idempotency key: enqueuing the same id again is a no-op')
    .option('--delay <ms>', 'run no earlier than this many milliseconds from now', integer(0))
    .option('--priority <n>', 'priority within the tenant (1 is highest)', integer(1))
    .option('--attempts <n>', 'attempts in all, the first included', integer(1))
    .action(async (queue: string, tenant: string, name: string, flags: EnqueueFlags, command: Command) => {
      const config = await configFor(command);
      if (config.engine === 'memory') {
        throw new ConfigError(
          'engine',
          "Expected engine 'bullmq' or 'pgboss' to enqueue from the command line (a memory-engine job would vanish with this process), got 'memory'",
        );
      }
      const logger = cliLogger(config);
      await checkRedis(config);
      const registry = await openRegistry(config, logger);
      try {
        const { Fleet } = await import('../../fleet.js');
        const fleet = await Fleet.open({
          engine: config.engine,
          ...(config.engine === 'pgboss'
            ? { database: requirePgbossUrl(config) }
            : { redis: config.redisUrl, prefix: config.prefix }),
          registry,
          logger,
        });
        try {
          // An id already there makes the enqueue a no-op: say so rather than print the id as if new.
          const existing = flags.jobId ? await fleet.engine.getJob(queue, tenant, flags.jobId) : null;
          const id = await fleet.enqueue(queue, {
            tenant,
            name,
            data: flags.data ?? null,
            ...(flags.jobId ? { jobId: flags.jobId } : {}),
            ...(flags.delay ? { delayMs: flags.delay } : {}),
            ...(flags.priority ? { priority: flags.priority } : {}),
            ...(flags.attempts ? { attempts: flags.attempts } : {}),
          });
          if (existing)
            process.stderr.write(
              `job ${id} was already in ${queue} for ${tenant} (${existing.state}): nothing enqueued\n`,
            );
          print(id);
        } finally {
          await fleet.close();
        }
      } finally {
        await registry.close();
      }
    });
}
