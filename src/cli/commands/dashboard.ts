/**
 * `tenant-fleet dashboard`: the fleet page, bull-board, `/api/fleet` and `/metrics` on
 * 127.0.0.1 until SIGINT/SIGTERM. The token comes from FLEET_DASHBOARD_TOKEN (read here,
 * in the entry point); without it the command refuses any host but a loopback one.
 */
import { Command } from 'commander';
import { ConfigError } from '../../reporting/errors.js';
import { cliLogger, configFor, print } from '../context.js';
import { engineFor } from '../engine-for.js';
import { collect, integer } from '../parse.js';
import { waitForShutdown } from '../process/shutdown.js';

interface DashboardFlags {
  host: string;
  port: number;
  queue?: string[];
  readOnly?: boolean;
  top?: number;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** The `dashboard` command. */
export function dashboardCommand(): Command {
  return new Command('dashboard')
    .description('serve the fleet page, bull-board, /api/fleet and /metrics (token: FLEET_DASHBOARD_TOKEN)')
    .option(
      '--host <host>',
      'interface to bind; another than 127.0.0.1 needs FLEET_DASHBOARD_TOKEN',
      '127.0.0.1',
    )
    .option('--port <n>', 'port (0: any free one)', integer(0), 3000)
    .option('--queue <name>', 'queue to show before a worker reports it (repeatable)', collect)
    .option('--read-only', 'bull-board refuses retry, promote, clean, remove and add')
    .option('--top <n>', 'tenants per list and per-tenant series in /metrics', integer(1))
    .action(async (flags: DashboardFlags, command: Command) => {
      const shutdown = waitForShutdown();
      const config = await configFor(command);
      const logger = cliLogger(config, 'info');
      const token = process.env.FLEET_DASHBOARD_TOKEN || undefined;
      if (!token && !LOOPBACK.has(flags.host))
        throw new ConfigError(
          'host',
          `Expected FLEET_DASHBOARD_TOKEN to be set to serve on ${flags.host}, got no token (only a loopback host may go without)`,
        );
      const { startDashboard } = await import('../../../dashboard/index.js');
      const engine = await engineFor(config);
      try {
        const dashboard = await startDashboard({
          engine,
          host: flags.host,
          port: flags.port,
          queues: flags.queue ?? [],
          token,
          readOnly: flags.readOnly ?? false,
          ...(flags.top ? { topTenants: flags.top } : {}),
        });
        print(`dashboard at ${dashboard.url}/ (bull-board at ${dashboard.url}/queues)`);
        // What it runs with, so an operator (and the flags test) can see each flag took.
        // `auth`, not `token`: the logger censors any field named token, a false one too.
        const shown = {
          queues: flags.queue ?? [],
          readOnly: flags.readOnly ?? false,
          top: flags.top ?? null,
        };
        logger.info(
          {
            url: dashboard.url,
            engine: config.engine,
            auth: token === undefined ? 'none' : 'token',
            ...shown,
          },
          'dashboard running',
        );
        await shutdown;
        await dashboard.close();
      } finally {
        await engine.close();
      }
    });
}
