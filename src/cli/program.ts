/** The `tenant-fleet` program: global flags and one command group per file. */
import { Command } from 'commander';
import { redactUrl } from '../reporting/redact.js';
import { packageVersion } from '../version.js';
import { configCommand } from './commands/config.js';
import { dashboardCommand } from './commands/dashboard.js';
import { enqueueCommand } from './commands/enqueue.js';
import { migrateCommand } from './commands/migrate.js';
import { orgsCommand, provisionCommand } from './commands/orgs.js';
import { prewarmCommand } from './commands/prewarm.js';
import { purgeCommand } from './commands/purge.js';
import { schedulerCommand } from './commands/scheduler.js';
import { statusCommand } from './commands/status.js';
import { workerCommand } from './commands/worker.js';
import { demoCommand } from './demo/demo.js';

/** Builds the program; `main.ts` parses `process.argv` with it, tests may parse their own. */
export function buildProgram(): Command {
  const program = new Command('tenant-fleet')
    .description(
      'A background-job worker fleet for multi-tenant SaaS: fair per-tenant queues, budgeted tenant pools.',
    )
    .version(packageVersion())
    .option(
      '-c, --config <path>',
      'config file (default: fleet.config.json, .js, .mjs or .ts in the working directory)',
    )
    .option(
      '--registry-url <url>',
      'the registry database: postgres://, mysql:// or sqlite:PATH (env FLEET_REGISTRY_URL)',
    )
    .option('--engine <engine>', 'queue engine: bullmq, pgboss or memory (env FLEET_ENGINE)')
    .option('--redis-url <url>', 'Redis for the bullmq engine (env FLEET_REDIS_URL)')
    .option('--pgboss-url <url>', 'Postgres for the pgboss engine (env FLEET_PGBOSS_URL or DATABASE_URL)')
    .option('--prefix <prefix>', 'key prefix of the fleet on Redis (env FLEET_PREFIX)')
    .option(
      '--budget <n>',
      "this process's database connection budget: connections open at once across all tenants (env FLEET_BUDGET)",
    )
    .option(
      '--server-budget <limits>',
      'the fleet-wide connection budget per database server, host:port=n pairs and *=n for the rest (env FLEET_SERVER_BUDGET)',
    )
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (env FLEET_LOG_LEVEL)')
    .option(
      '--log-format <format>',
      'log lines as json (the default) or pretty, for a terminal (env FLEET_LOG_FORMAT)',
    )
    .addHelpText(
      'after',
      '\nConfiguration: flags, then FLEET_* environment variables, then the config file, then defaults.\nExit codes: 0 ok, 1 failed, 2 bad flag, argument or configuration.',
    );
  program
    .addCommand(workerCommand())
    .addCommand(schedulerCommand())
    .addCommand(orgsCommand())
    .addCommand(provisionCommand())
    .addCommand(migrateCommand())
    .addCommand(prewarmCommand())
    .addCommand(enqueueCommand())
    .addCommand(purgeCommand())
    .addCommand(configCommand())
    .addCommand(dashboardCommand())
    .addCommand(statusCommand())
    .addCommand(demoCommand());
  configureAll(program);
  return program;
}

// Commands added with addCommand do not inherit settings: apply them to the whole tree.
// Commander's usage errors quote the offending value (`--limit postgres://u:pw@h`): they
// reach the terminal redacted like everything else.
function configureAll(command: Command): void {
  command
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeErr: (text) => process.stderr.write(redactUrl(text)) });
  requireAfterUnknownOptions(command);
  for (const sub of command.commands) configureAll(sub);
}

// Commander reports a missing required option before an unknown one, so `worker
// --handler h.ts` got "required option '--handlers <path>' not specified" and never its
// "(Did you mean --handlers?)". Required options are checked in a preAction hook instead,
// which runs after the unknown-option check, with Commander's own message.
function requireAfterUnknownOptions(command: Command): void {
  const required = command.options.filter((option) => option.mandatory);
  if (required.length === 0) return;
  for (const option of required) option.makeOptionMandatory(false);
  command.hook('preAction', () => {
    for (const option of required) {
      if (command.getOptionValue(option.attributeName()) === undefined)
        command.error(`error: required option '${option.flags}' not specified`, {
          code: 'commander.missingMandatoryOptionValue',
        });
    }
  });
}
