/**
 * `tenant-fleet demo` (`npm start`): the whole fleet on one machine with no services. A
 * SQLite registry and 20 SQLite tenant databases under `.fleet/`, the memory engine (or
 * BullMQ with `--engine bullmq`), tenant migrations, a worker, a scheduler fanning a job
 * out to every tenant every 10 s, one noisy tenant flooding its queue, and a stats line.
 * Ctrl-C stops it cleanly; a second run reuses `.fleet/`.
 */
import { Command } from 'commander';
import { redactUrl } from '../../reporting/errors.js';
import { prewarmJob, runStartupJobs } from '../../scheduler/startup.js';
import { migrateTenants } from '../../scheduler/tenant-migrations.js';
import { loadConfig } from '../config/config.js';
import { cliLogger, type GlobalFlags, print } from '../context.js';
import { cronPattern, integer } from '../parse.js';
import { checkRedis } from '../process/preflight.js';
import { waitForShutdown } from '../process/shutdown.js';
import { type DemoDashboard, startDemoDashboard } from './dashboard.js';
import { claimDemoPrefix, deleteRedisPrefix } from './redis-prefix.js';
import {
  DEMO_TENANTS,
  demoPaths,
  NOISY_TENANT,
  prepareDemoDir,
  seedDemoTenants,
  sqliteReadCommand,
} from './setup.js';
import { DEMO_QUEUE, DemoStats, demoHandler, enqueueWelcomeJobs, generateTraffic } from './traffic.js';

interface DemoFlags {
  dir: string;
  statsInterval: number;
  cron: string;
  keep?: boolean;
  dashboardPort: number;
}

/** The `demo` command. */
export function demoCommand(): Command {
  return new Command('demo')
    .description('run the whole fleet locally with no services (what `npm start` runs); Ctrl-C stops it')
    .option('--dir <path>', 'where the registry and tenant databases live (reused by the next run)', '.fleet')
    .option('--stats-interval <ms>', 'how often the stats line is printed', integer(100), 2000)
    .option(
      '--cron <pattern>',
      'the fan-out schedule (5 fields, or 6 with seconds first)',
      cronPattern,
      '*/10 * * * * *',
    )
    .option(
      '--keep',
      "with --engine bullmq or pgboss, leave the demo's jobs on Redis or Postgres at exit (default: removed)",
    )
    .option(
      '--dashboard-port <n>',
      'serve the dashboard on 127.0.0.1 at this port (0: none)',
      integer(0),
      3000,
    )
    .addHelpText(
      'after',
      '\nWith --engine bullmq the jobs go through Redis at --redis-url, REDIS_URL or FLEET_REDIS_URL (default redis://127.0.0.1:6379);\nwith --engine pgboss through Postgres at --pgboss-url, FLEET_PGBOSS_URL or DATABASE_URL (schema pgboss).',
    )
    .action(async (flags: DemoFlags, command: Command) => {
      const shutdown = waitForShutdown();
      const stop = new AbortController();
      void shutdown.then(() => stop.abort());
      const globals = command.optsWithGlobals<GlobalFlags>();
      const paths = demoPaths(flags.dir);
      const { config } = await loadConfig({
        configPath: globals.config,
        flags: {
          registryUrl: paths.registryUrl,
          engine: globals.engine ?? process.env.FLEET_ENGINE ?? 'memory',
          redisUrl: globals.redisUrl ?? process.env.FLEET_REDIS_URL ?? process.env.REDIS_URL,
          pgbossUrl: globals.pgbossUrl,
          prefix: globals.prefix ?? process.env.FLEET_PREFIX ?? 'fleet-demo',
          budget: globals.budget ?? process.env.FLEET_BUDGET ?? '10',
          logLevel: globals.logLevel ?? process.env.FLEET_LOG_LEVEL ?? 'warn',
        },
      });
      const logger = cliLogger(config, 'warn', 'tenant-fleet-demo');
      // The demo enqueues only under a prefix of its own (never a fleet's, which FLEET_PREFIX
      // may name), and so may remove every key under it at the end.
      if (config.engine === 'bullmq') {
        await checkRedis(config);
        const source = globals.prefix
          ? 'from --prefix'
          : process.env.FLEET_PREFIX
            ? 'from FLEET_PREFIX'
            : 'the default';
        await claimDemoPrefix(config.redisUrl, config.prefix, source);
      }
      prepareDemoDir(paths);
      const { openFleet } = await import('../open-fleet.js');
      const { startSchedules } = await import('../start-schedules.js');
      const handle = await openFleet(config, logger);
      const { fleet, pools, registry } = handle;
      let statsTimer: NodeJS.Timeout | undefined;
      let closeSchedules: (() => Promise<void>) | undefined;
      let flood: Promise<void> | undefined;
      let dashboard: DemoDashboard | undefined;
      try {
        const { added } = await seedDemoTenants(registry, paths);
        // A demo tenant deactivated with `tenant-fleet orgs deactivate` sits the demo out.
        const tenants: string[] = [];
        for (const slug of DEMO_TENANTS) if ((await registry.get(slug)).active) tenants.push(slug);
        print(`tenant-fleet demo: ${tenants.length} tenants (${added} new) in ${paths.dir}`);
        const startup = await runStartupJobs([prewarmJob(pools)], {
          mode: 'blocking',
          logger,
          signal: stop.signal,
        });
        const prewarm = startup.prewarmReport;
        if (prewarm) {
          print(
            `  prewarm: ${prewarm.warmed}/${prewarm.totalActive} tenant pools warmed, ${prewarm.failed} failed, ${prewarm.skippedCap} skipped (budget ${config.budget} connections)`,
          );
        }
        const migration = await migrateTenants(fleet, { dir: paths.migrationsDir, signal: stop.signal });
        print(
          `  migrations: ${migration.migrated.length} tenants migrated, ${migration.upToDate.length} up to date, ${migration.failed.length} failed`,
        );
        for (const failure of migration.failed) print(`    ${failure.tenant}: ${failure.error}`);

        const worker = fleet.worker(DEMO_QUEUE, demoHandler, {
          concurrency: 8,
          perTenantConcurrency: 2,
          shutdownTimeoutMs: 5000,
        });
        const stats = new DemoStats(worker, tenants);
        dashboard = await startDemoDashboard(fleet.engine, pools, worker, DEMO_QUEUE, flags.dashboardPort);
        await enqueueWelcomeJobs(fleet, tenants);
        const schedules = await startSchedules(handle, [
          {
            id: 'demo-report',
            cron: flags.cron,
            queue: DEMO_QUEUE,
            name: 'scheduled-report',
            data: {},
            catchUp: 'latest',
          },
        ]);
        closeSchedules = schedules.close;
        flood = generateTraffic(fleet, tenants, stop.signal);

        const where = {
          bullmq: ` (prefix ${config.prefix})`,
          pgboss: ` (schema pgboss on ${redactUrl(config.pgbossUrl ?? '')})`,
          memory: ' (in this process)',
        };
        print(`  engine: ${config.engine}${where[config.engine]}`);
        print(`  worker: queue "${DEMO_QUEUE}", concurrency 8, fair across tenants`);
        print(`  scheduler: one "${DEMO_QUEUE}" job per active tenant on "${flags.cron}"`);
        print(
          `  traffic: "${NOISY_TENANT}" keeps ~2000 jobs waiting; every other tenant enqueues one job a second`,
        );
        print(`  where to look: ${sqliteReadCommand(`${paths.tenantsDir}/acme.db`)}`);
        print(
          `                 ${paths.registryUrl.replace(/^sqlite:/, '')} (the registry: npx tenant-fleet orgs list --registry-url ${paths.registryUrl},\n                  or npm run fleet -- orgs list … in a clone of the repository)`,
        );
        if (dashboard.url) print(`  dashboard: ${dashboard.url}`);
        if (dashboard.problem)
          print(`  dashboard: not started (${dashboard.problem}); --dashboard-port <n> picks another port`);
        print('  Ctrl-C stops it.');

        statsTimer = setInterval(() => {
          print(stats.line(pools));
          if (stats.allServedOnce())
            print(`every demo tenant has processed jobs (${tenants.length}/${tenants.length})`);
        }, flags.statsInterval);

        const signal = await shutdown;
        print(`received ${signal}: stopping (running jobs finish first)`);
        clearInterval(statsTimer);
        await schedules.close();
        await worker.close();
      } finally {
        stop.abort();
        clearInterval(statsTimer);
        await flood;
        await closeSchedules?.();
        await dashboard?.close();
        if (config.engine === 'pgboss' && !flags.keep) {
          // The demo's own queue (traffic.ts DEMO_QUEUE), in a schema a fleet may share.
          const purged = await fleet.engine.purge(DEMO_QUEUE).catch(() => []);
          print(`removed the demo's jobs of ${purged.length} tenants from Postgres (--keep leaves them)`);
        }
        await handle.close();
        if (config.engine === 'bullmq') {
          if (flags.keep)
            print(
              `left the demo's keys under ${config.prefix} on Redis (--keep); the next demo run reuses them`,
            );
          else {
            const removed = await deleteRedisPrefix(config.redisUrl, config.prefix);
            print(`removed the demo's ${removed} keys under ${config.prefix} on Redis (--keep leaves them)`);
          }
        }
      }
      print('demo stopped cleanly');
    });
}
