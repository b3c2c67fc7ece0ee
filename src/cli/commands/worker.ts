/** `tenant-fleet worker`: run handlers for one or more queues until SIGINT/SIGTERM. */
import { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { SnapshotPublisher } from '../../metrics/snapshot-publisher.js';
import { prewarmJob, runStartupJobs, type StartupMode } from '../../scheduler/startup.js';
import { handlersOf } from '../../worker/define-handlers.js';
import type { FleetWorker } from '../../worker/fleet-worker.js';
import { resolveFleetWorkerOptions } from '../../worker/worker-options.js';
import { cliLogger, configFor } from '../context.js';
import { loadUserModule } from '../load-module.js';
import { collect, integer, oneOf } from '../parse.js';
import { waitForShutdown } from '../shutdown.js';
import type { RunningSchedules } from '../start-schedules.js';

interface WorkerFlags {
  queue?: string[];
  handlers: string;
  concurrency?: number;
  perTenantConcurrency?: number;
  jobsPerTurn?: number;
  startup?: StartupMode;
  prewarm: boolean;
  schedules?: boolean;
}

/** The `worker` command. */
export function workerCommand(): Command {
  return new Command('worker')
    .description('run job handlers for queues, fairly across tenants, until SIGINT or SIGTERM')
    .requiredOption(
      '--handlers <path>',
      'module whose default export is defineHandlers({ <queue>: handler })',
    )
    .option(
      '--queue <name>',
      'queue to work (repeatable; default: every queue of the handlers file)',
      collect,
    )
    .option(
      '--concurrency <n>',
      `jobs at once per queue (default: worker.concurrency, else ${resolveFleetWorkerOptions().concurrency})`,
      integer(1),
    )
    .option('--per-tenant-concurrency <n>', 'jobs of one tenant at once per queue', integer(1))
    .option('--jobs-per-turn <n>', 'jobs run back to back for a tenant on its turn (default 4)', integer(1))
    .option(
      '--startup <mode>',
      'run startup jobs before fetching (blocking) or beside it (background)',
      oneOf(['blocking', 'background'] as const),
    )
    .option('--no-prewarm', 'skip the pool prewarm startup job')
    .option('--schedules', "also run the config's schedules in this process (needed with the memory engine)")
    .action(async (flags: WorkerFlags, command: Command) => {
      // Listen before anything slow starts, so an early Ctrl-C is a graceful stop too.
      const shutdown = waitForShutdown();
      const config = await configFor(command);
      const logger = cliLogger(config, 'info');
      const module = await loadUserModule(flags.handlers, 'handlers');
      const handlers = handlersOf(module, flags.handlers);
      const queues = flags.queue ?? Object.keys(handlers);
      for (const queue of queues) {
        if (!handlers[queue]) {
          throw new ConfigError(
            'queue',
            `Expected a handler for queue \`${queue}\` in ${flags.handlers}, got handlers for ${Object.keys(handlers).join(', ')}`,
          );
        }
      }
      const { openFleet } = await import('../open-fleet.js');
      const { startSchedules } = await import('../start-schedules.js');
      const handle = await openFleet(config, logger);
      const stop = new AbortController();
      void shutdown.then(() => stop.abort());
      const workers: FleetWorker[] = [];
      // Snapshots for the dashboard and `/metrics`, about once a second; removed on close.
      const snapshots = new SnapshotPublisher({ engine: handle.fleet.engine, pools: handle.pools });
      let schedules: RunningSchedules | undefined;
      try {
        const prewarm = flags.prewarm && config.worker.prewarm;
        const startupMode = flags.startup ?? config.worker.startup;
        const startup = await runStartupJobs(prewarm ? [prewarmJob(handle.pools)] : [], {
          mode: startupMode,
          logger,
          signal: stop.signal,
        });
        const perTenantConcurrency = flags.perTenantConcurrency ?? config.worker.perTenantConcurrency;
        const jobsPerTurn = flags.jobsPerTurn ?? config.worker.jobsPerTurn;
        const concurrency = flags.concurrency ?? config.worker.concurrency;
        for (const queue of stop.signal.aborted ? [] : queues) {
          workers.push(
            handle.fleet.worker(queue, handlers[queue]!, {
              shutdownTimeoutMs: config.worker.shutdownTimeoutMs,
              ...(concurrency ? { concurrency } : {}),
              ...(perTenantConcurrency ? { perTenantConcurrency } : {}),
              ...(jobsPerTurn ? { jobsPerTurn } : {}),
            }),
          );
        }
        for (const worker of workers) snapshots.watch(worker);
        if (flags.schedules && !stop.signal.aborted)
          schedules = await startSchedules(handle, config.schedules);
        logger.info(
          {
            queues,
            engine: config.engine,
            prefix: config.prefix,
            budget: handle.pools.options.maxConnections,
            concurrency: workers[0]?.options.concurrency,
            perTenantConcurrency: workers[0]?.options.perTenantConcurrency,
            jobsPerTurn: workers[0]?.options.jobsPerTurn,
            startup: startupMode,
            prewarm: prewarm,
            schedules: schedules?.scheduler.schedules().map((s) => s.id) ?? [],
          },
          'worker running; SIGINT or SIGTERM stops it',
        );
        const signal = await shutdown;
        logger.info({ signal }, 'shutting down: finishing running jobs');
        await schedules?.close();
        await Promise.all(workers.map((worker) => worker.close()));
        await startup.done;
      } finally {
        stop.abort();
        await snapshots.close();
        await schedules?.close();
        await handle.close();
      }
      logger.info({ queues }, 'worker stopped');
    });
}
