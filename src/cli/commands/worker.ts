/** `tenant-fleet worker`: run handlers for one or more queues until SIGINT/SIGTERM. */
import { Command } from 'commander';
import { SnapshotPublisher } from '../../metrics/snapshot-publisher.js';
import { ConfigError } from '../../reporting/errors.js';
import { prewarmJob, runStartupJobs, type StartupMode } from '../../scheduler/startup.js';
import { handlersOf } from '../../worker/define-handlers.js';
import type { FleetWorker } from '../../worker/fleet-worker.js';
import { resolveFleetWorkerOptions } from '../../worker/worker-options.js';
import { loadUserModule } from '../config/load-module.js';
import { cliLogger, configFor, print } from '../context.js';
import { collect, integer, oneOf } from '../parse.js';
import type { MetricsServer } from '../process/metrics-server.js';
import { waitForShutdown } from '../process/shutdown.js';
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
  metricsPort?: number;
  metricsHost: string;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

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
    .option(
      '--metrics-port <n>',
      "serve this process's /metrics (Prometheus) and /health on this port (0: any free one)",
      integer(0),
    )
    .option(
      '--metrics-host <host>',
      'interface for --metrics-port; another than 127.0.0.1 needs FLEET_DASHBOARD_TOKEN',
      '127.0.0.1',
    )
    .action(async (flags: WorkerFlags, command: Command) => {
      // Listen before anything slow starts, so an early Ctrl-C is a graceful stop too.
      const shutdown = waitForShutdown();
      const config = await configFor(command);
      const logger = cliLogger(config, 'info');
      const token = process.env.FLEET_DASHBOARD_TOKEN || undefined;
      if (flags.metricsPort !== undefined && !token && !LOOPBACK.has(flags.metricsHost))
        throw new ConfigError(
          'metricsHost',
          `Expected FLEET_DASHBOARD_TOKEN to be set to serve /metrics on ${flags.metricsHost}, got no token (only a loopback host may go without)`,
        );
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
      // Bound first, so a port in use fails before anything connects; /health says 503 until fetching.
      let metricsServer: MetricsServer | undefined;
      if (flags.metricsPort !== undefined) {
        const { startMetricsServer } = await import('../process/metrics-server.js');
        const { authorised } = await import('../../../dashboard/auth.js');
        metricsServer = await startMetricsServer({
          host: flags.metricsHost,
          port: flags.metricsPort,
          ...(token ? { authorised: (header: string | undefined) => authorised(header, token) } : {}),
        });
        print(`metrics at ${metricsServer.url}/metrics, health at ${metricsServer.url}/health`);
        const server = metricsServer;
        // 503 from the moment the signal arrives, while running jobs finish.
        void shutdown.then(() => {
          server.health = 'closing';
        });
      }
      try {
        await runWorker();
      } finally {
        await metricsServer?.close();
      }

      async function runWorker(): Promise<void> {
        const { openFleet } = await import('../open-fleet.js');
        const { startSchedules } = await import('../start-schedules.js');
        const handle = await openFleet(config, logger);
        const stop = new AbortController();
        void shutdown.then(() => stop.abort());
        const workers: FleetWorker[] = [];
        // Snapshots for the dashboard and `/metrics`, about once a second; removed on close.
        const snapshots = new SnapshotPublisher({ engine: handle.fleet.engine, pools: handle.pools });
        if (metricsServer) {
          const { processRegistry } = await import('../../../dashboard/process-metrics.js');
          metricsServer.source = processRegistry(() => snapshots.snapshot(), handle.fleet.engine.name);
        }
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
          if (metricsServer && !stop.signal.aborted) metricsServer.health = 'running';
          if (flags.schedules && !stop.signal.aborted)
            schedules = await startSchedules(handle, config.schedules);
          if (schedules) snapshots.watchScheduler(schedules.scheduler);
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
          if (metricsServer) metricsServer.health = 'closing';
          logger.info({ signal }, 'shutting down: finishing running jobs');
          await schedules?.close();
          await Promise.all(workers.map((worker) => worker.close()));
          await startup.done;
        } finally {
          if (metricsServer) metricsServer.health = 'closing';
          stop.abort();
          await snapshots.close();
          await schedules?.close();
          await handle.close();
        }
        logger.info({ queues }, 'worker stopped');
      }
    });
}
