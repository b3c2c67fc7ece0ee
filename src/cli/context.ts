/**
 * What every command shares: the configuration read from the command's flags, the file
 * and the environment; a logger writing to standard error (standard output is for the
 * command's own output); and the registry.
 */

import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import pino from 'pino';
import { ConfigError, DatabaseConnectionError, FleetError } from '../reporting/errors.js';
import { createLogger, type Logger } from '../reporting/logger.js';
import { redactJsonText, redactUrl } from '../reporting/redact.js';
import { databaseKindOf, sqlitePath } from '../tenancy/drivers/driver.js';
import type { OrgRegistry } from '../tenancy/registry/org-registry.js';
import { type FleetConfig, type LoadConfigOptions, loadConfig, requireRegistryUrl } from './config/config.js';
import { deadline, PREFLIGHT_TIMEOUT_MS, ServiceUnreachableError } from './process/preflight.js';
import { prettyDestination } from './process/pretty-log.js';

/** The flags every command takes (see `program.ts`). */
export interface GlobalFlags {
  config?: string;
  registryUrl?: string;
  engine?: string;
  redisUrl?: string;
  pgbossUrl?: string;
  prefix?: string;
  budget?: string;
  serverBudget?: string;
  logLevel?: string;
  logFormat?: string;
}

/** Reads the configuration for `command`, its global flags overriding file and environment. */
export async function configFor(command: Command): Promise<FleetConfig> {
  const flags = command.optsWithGlobals<GlobalFlags>();
  const { config } = await loadConfig({ configPath: flags.config, flags: globalConfigFlags(flags) });
  return config;
}

/** The configuration keys the global flags set. */
export function globalConfigFlags(flags: GlobalFlags): NonNullable<LoadConfigOptions['flags']> {
  return {
    registryUrl: flags.registryUrl,
    engine: flags.engine,
    redisUrl: flags.redisUrl,
    pgbossUrl: flags.pgbossUrl,
    prefix: flags.prefix,
    budget: flags.budget,
    fleetBudget: flags.serverBudget,
    logLevel: flags.logLevel,
    logFormat: flags.logFormat,
  };
}

/**
 * A logger on standard error, written synchronously so no line is lost at exit. Without a
 * configured level, one-shot commands log warnings only and long-running ones `info`.
 * JSON lines unless `logFormat` is `pretty` (made from the redacted JSON line).
 */
export function cliLogger(
  config: FleetConfig,
  fallback: 'info' | 'warn' = 'warn',
  name = 'tenant-fleet',
): Logger {
  return createLogger({
    level: config.logLevel ?? fallback,
    name,
    destination:
      config.logFormat === 'pretty' ? prettyDestination(2) : pino.destination({ dest: 2, sync: true }),
  });
}

/**
 * Opens the registry the configuration names and makes sure its table exists: creates it,
 * or with `create: false` (a command that only reads or changes orgs already there)
 * refuses a database without it (or a SQLite file that is not there), which is most
 * likely a mistyped URL, with a {@link ConfigError}, creating nothing.
 */
export async function openRegistry(
  config: FleetConfig,
  logger: Logger,
  { create = true }: { create?: boolean } = {},
): Promise<OrgRegistry> {
  // Loaded on demand: `--help` and usage errors should not pay for every database driver.
  const { OrgRegistry } = await import('../tenancy/registry/org-registry.js');
  const url = requireRegistryUrl(config);
  // A registry that cannot connect says so with a DatabaseConnectionError; its cause is
  // what the operator needs (ECONNREFUSED …), next to what to check.
  const unreachable = (err: unknown) =>
    new ServiceUnreachableError(
      'registry',
      url,
      'check that the database server is running and that --registry-url, FLEET_REGISTRY_URL or `registryUrl` in the config names it',
      err instanceof DatabaseConnectionError ? err.cause : err,
    );
  const passOn = (err: unknown) => err instanceof FleetError && !(err instanceof DatabaseConnectionError);
  const timeout = `no answer within ${PREFLIGHT_TIMEOUT_MS} ms`;
  const noRegistry = (got: string) =>
    new ConfigError(
      'registryUrl',
      `Expected the tenant registry (table fleet_orgs) in ${redactUrl(url)}, got ${got}: check --registry-url, FLEET_REGISTRY_URL or \`registryUrl\` in the config, or create the registry with \`tenant-fleet orgs add <slug>\``,
    );
  // Opening a SQLite file that is not there would create it.
  if (!create && databaseKindOf(url) === 'sqlite') {
    const path = sqlitePath(url);
    if (path !== ':memory:' && !existsSync(path)) throw noRegistry('no such file');
  }
  let registry: OrgRegistry;
  try {
    registry = await deadline(OrgRegistry.open(url, { logger }), PREFLIGHT_TIMEOUT_MS, timeout);
  } catch (err) {
    if (passOn(err)) throw err;
    throw unreachable(err);
  }
  try {
    // The first query: a registry that opens lazily shows here that its server is away.
    if (create) await deadline(registry.migrate(), PREFLIGHT_TIMEOUT_MS * 2, timeout);
    else if (!(await deadline(registry.isMigrated(), PREFLIGHT_TIMEOUT_MS, timeout)))
      throw noRegistry('a database without it');
  } catch (err) {
    await registry.close().catch(() => {});
    if (passOn(err)) throw err;
    throw unreachable(err);
  }
  return registry;
}

/**
 * Writes one line to standard output. The line goes through {@link redactUrl} on its way
 * out: the terminal never receives a connection string that was not redacted, whichever
 * command built the line. Once the reader has closed the pipe (`… | head`), nothing.
 */
export function print(line: string): void {
  write(`${redactUrl(line)}\n`);
}

/** Writes `value` as one JSON line to standard output, every string in it redacted. */
export function printJson(value: unknown): void {
  write(`${redactJsonText(JSON.stringify(value))}\n`);
}

function write(text: string): void {
  if (!process.stdout.destroyed) process.stdout.write(text);
}
