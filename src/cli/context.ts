/**
 * What every command shares: the configuration read from the command's flags, the file
 * and the environment; a logger writing to standard error (standard output is for the
 * command's own output); and the registry.
 */
import type { Command } from 'commander';
import pino from 'pino';
import { createLogger, type Logger } from '../logger.js';
import type { OrgRegistry } from '../tenancy/registry/org-registry.js';
import { type FleetConfig, type LoadConfigOptions, loadConfig, requireRegistryUrl } from './config.js';

/** The flags every command takes (see `program.ts`). */
export interface GlobalFlags {
  config?: string;
  registryUrl?: string;
  engine?: string;
  redisUrl?: string;
  prefix?: string;
  budget?: string;
  logLevel?: string;
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
    prefix: flags.prefix,
    budget: flags.budget,
    logLevel: flags.logLevel,
  };
}

/**
 * A logger on standard error, written synchronously so no line is lost at exit. Without a
 * configured level, one-shot commands log warnings only and long-running ones `info`.
 */
export function cliLogger(
  config: FleetConfig,
  fallback: 'info' | 'warn' = 'warn',
  name = 'tenant-fleet',
): Logger {
  return createLogger({
    level: config.logLevel ?? fallback,
    name,
    destination: pino.destination({ dest: 2, sync: true }),
  });
}

/** Opens the registry the configuration names and makes sure its table exists. */
export async function openRegistry(config: FleetConfig, logger: Logger): Promise<OrgRegistry> {
  // Loaded on demand: `--help` and usage errors should not pay for every database driver.
  const { OrgRegistry } = await import('../tenancy/registry/org-registry.js');
  const registry = await OrgRegistry.open(requireRegistryUrl(config), { logger });
  try {
    await registry.migrate();
  } catch (err) {
    await registry.close();
    throw err;
  }
  return registry;
}

/** Writes one line to standard output. */
export function print(line: string): void {
  process.stdout.write(`${line}\n`);
}
