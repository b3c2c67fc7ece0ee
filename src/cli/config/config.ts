/**
 * The CLI's configuration: a file (`fleet.config.json`, `.js`, `.mjs` or `.ts`, or the
 * one `--config` names), then `FLEET_*` environment variables, then command-line flags,
 * each overriding the one before, validated once with zod. A bad value becomes a
 * {@link ConfigError} that names the key and where it came from, what was expected and
 * what was got; the CLI turns it into exit code 2.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError, describe, redactUrl } from '../../reporting/errors.js';
import { isCronPattern } from '../../scheduler/fan-out-options.js';
import { MAX_CACHED_POOLS, MAX_CONNECTIONS } from '../../tenancy/tenant-pools/options.js';
import { MAX_DURATION_MS } from '../../validate.js';
import { MAX_CONCURRENCY, MAX_JOBS_PER_TURN } from '../../worker/worker-options.js';
import { LOG_FORMATS } from '../process/pretty-log.js';
import { fleetBudgetSchema, serverBudgetValue } from './fleet-budget-config.js';
import { defaultExport, loadUserModule } from './load-module.js';

/** The file names looked for in the working directory when `--config` is not given. */
export const CONFIG_FILE_NAMES = [
  'fleet.config.json',
  'fleet.config.js',
  'fleet.config.mjs',
  'fleet.config.ts',
] as const;

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const scheduleSchema = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$/, 'expected letters, digits, - or _'),
    cron: z.string().refine(isCronPattern, 'expected a cron pattern of 5 fields, or 6 with seconds first'),
    timezone: z.string().min(1).optional(),
    queue: z.string().min(1),
    name: z.string().min(1),
    data: z.unknown().optional(),
    catchUp: z.enum(['latest', 'none']).default('latest'),
  })
  .strict();

const workerSchema = z
  .object({
    /** @default the worker's own default (FleetWorkerOptions.concurrency) */
    concurrency: z.int().min(1).max(MAX_CONCURRENCY).optional(),
    perTenantConcurrency: z.int().min(1).max(MAX_CONCURRENCY).optional(),
    jobsPerTurn: z.int().min(1).max(MAX_JOBS_PER_TURN).optional(),
    shutdownTimeoutMs: z.int().min(0).max(MAX_DURATION_MS).default(30_000),
    startup: z.enum(['blocking', 'background']).default('blocking'),
    prewarm: z.boolean().default(true),
  })
  .strict();

const configSchema = z
  .object({
    registryUrl: z.string().min(1).optional(),
    engine: z.enum(['memory', 'bullmq', 'pgboss']).default('bullmq'),
    redisUrl: z
      .string()
      .regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL')
      .default('redis://127.0.0.1:6379'),
    /**
     * Postgres for the pgboss engine (its jobs live in the `pgboss` schema there). Checked
     * only when the engine is pgboss: DATABASE_URL may name another database otherwise.
     */
    pgbossUrl: z.string().min(1).optional(),
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,40}$/, 'expected 1–40 letters, digits, - or _')
      .default('fleet'),
    /** The process's database connection budget (TenantPools' `maxConnections`). */
    budget: z.int().min(1).max(MAX_CONNECTIONS).default(20),
    maxCachedPools: z.int().min(1).max(MAX_CACHED_POOLS).optional(),
    acquireTimeoutMs: z.int().min(1).max(MAX_DURATION_MS).optional(),
    /** The fleet-wide connection budget per database server (TenantPools' `fleetBudget`). */
    fleetBudget: fleetBudgetSchema.optional(),
    /** @default 'info' for long-running commands (worker, scheduler), 'warn' for one-shot ones */
    logLevel: z.enum(logLevels).optional(),
    /** Log lines as JSON, or `pretty` for a terminal. @default 'json' */
    logFormat: z.enum(LOG_FORMATS).default('json'),
    worker: workerSchema.default(() => workerSchema.parse({})),
    schedules: z.array(scheduleSchema).default([]),
  })
  .strict();

/** The validated configuration every command reads. */
export type FleetConfig = z.output<typeof configSchema>;
/** One `schedules[]` entry of the config: a fan-out the `scheduler` command runs. */
export type ScheduleConfig = z.output<typeof scheduleSchema>;
/** The configuration as written in a file (every key optional). */
export type FleetConfigInput = z.input<typeof configSchema>;

/** The environment variables read, and the key each one sets. */
export const ENV_KEYS = {
  FLEET_REGISTRY_URL: 'registryUrl',
  FLEET_ENGINE: 'engine',
  FLEET_REDIS_URL: 'redisUrl',
  // The conventional name first, so that FLEET_PGBOSS_URL, read after it, wins.
  DATABASE_URL: 'pgbossUrl',
  FLEET_PGBOSS_URL: 'pgbossUrl',
  FLEET_PREFIX: 'prefix',
  FLEET_BUDGET: 'budget',
  FLEET_MAX_CACHED_POOLS: 'maxCachedPools',
  FLEET_ACQUIRE_TIMEOUT_MS: 'acquireTimeoutMs',
  FLEET_SERVER_BUDGET: 'fleetBudget',
  FLEET_LOG_LEVEL: 'logLevel',
  FLEET_LOG_FORMAT: 'logFormat',
} as const satisfies Record<string, keyof FleetConfigInput>;

type TopKey = (typeof ENV_KEYS)[keyof typeof ENV_KEYS];

/** The flags every command takes, with the key each sets. */
export const FLAG_KEYS = {
  registryUrl: '--registry-url',
  engine: '--engine',
  redisUrl: '--redis-url',
  pgbossUrl: '--pgboss-url',
  prefix: '--prefix',
  budget: '--budget',
  fleetBudget: '--server-budget',
  logLevel: '--log-level',
  logFormat: '--log-format',
} as const satisfies Partial<Record<TopKey, string>>;

/** Where the configuration comes from; all optional (tests pass their own `env`). */
export interface LoadConfigOptions {
  /** An explicit config file (`--config`); else the first of {@link CONFIG_FILE_NAMES} in `cwd`. */
  configPath?: string | undefined;
  /** @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Command-line values by config key (`registryUrl`, `budget` …); undefined ones are ignored. */
  flags?: Partial<Record<TopKey, string | undefined>>;
  /** @default process.cwd() */
  cwd?: string;
}

/** The configuration and the file it came from (null when none). */
export interface LoadedConfig {
  config: FleetConfig;
  file: string | null;
}

/**
 * Reads, merges and validates the configuration. Throws {@link ConfigError} naming the
 * first bad key, its source (file, environment variable or flag), the expectation and
 * the value found (URLs redacted).
 */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<LoadedConfig> {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  const file = findConfigFile(options.configPath ?? env.FLEET_CONFIG, cwd);
  const fromFile = file ? await readConfigFile(file) : {};
  const merged: Record<string, unknown> = { ...fromFile };
  const sources = new Map<string, string>();
  for (const key of Object.keys(fromFile)) sources.set(key, `${file}`);
  for (const [name, key] of Object.entries(ENV_KEYS)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    merged[key] = key === 'fleetBudget' ? serverBudgetValue(merged[key], value) : coerce(key, value);
    sources.set(key, `env ${name}`);
  }
  for (const [key, value] of Object.entries(options.flags ?? {})) {
    if (value === undefined) continue;
    merged[key] = key === 'fleetBudget' ? serverBudgetValue(merged[key], value) : coerce(key, value);
    sources.set(key, `flag ${FLAG_KEYS[key as keyof typeof FLAG_KEYS] ?? key}`);
  }
  const parsed = configSchema.safeParse(merged, { reportInput: true });
  if (!parsed.success) throw toConfigError(parsed.error, sources);
  return { config: parsed.data, file };
}

const NUMERIC_KEYS: ReadonlySet<string> = new Set(['budget', 'maxCachedPools', 'acquireTimeoutMs']);

/** Environment and flag values are strings; numeric keys are read as numbers when they look like one. */
function coerce(key: string, value: string): unknown {
  if (NUMERIC_KEYS.has(key) && /^-?\d+(\.\d+)?$/.test(value.trim())) return Number(value);
  return value;
}

function findConfigFile(explicit: string | undefined, cwd: string): string | null {
  if (explicit) {
    const path = resolve(cwd, explicit);
    if (!existsSync(path)) {
      throw new ConfigError(
        'config',
        `Expected --config to name an existing file, got ${describe(explicit)}`,
      );
    }
    return path;
  }
  for (const name of CONFIG_FILE_NAMES) {
    const path = resolve(cwd, name);
    if (existsSync(path)) return path;
  }
  return null;
}

async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  let value: unknown;
  if (path.endsWith('.json')) {
    try {
      value = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new ConfigError('config', `Expected ${path} to be valid JSON, got ${(err as Error).message}`);
    }
  } else {
    value = defaultExport(await loadUserModule(path, 'config'));
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError('config', `Expected ${path} to hold a config object, got ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}

function toConfigError(error: z.ZodError, sources: Map<string, string>): ConfigError {
  const messages = error.issues.map((issue) => {
    const key = issue.path.map(String).join('.') || '(root)';
    const top = String(issue.path[0] ?? '');
    const source = sources.get(top) ?? 'config';
    if (issue.code === 'unrecognized_keys') {
      return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `\`${k}\``).join(', ')} in ${source === 'config' ? 'the config' : source}`;
    }
    const got = 'input' in issue ? describe(issue.input) : 'nothing';
    return `\`${key}\` (from ${source}): ${issue.message.replace(/^Invalid input: /, '')}, got ${redactUrl(got)}`;
  });
  const first = error.issues[0];
  const option = first ? first.path.map(String).join('.') || 'config' : 'config';
  return new ConfigError(option, `Invalid configuration: ${messages.join('; ')}`);
}

/** The configured registry URL, or a {@link ConfigError} saying how to set it. */
export function requireRegistryUrl(config: FleetConfig): string {
  if (!config.registryUrl) {
    throw new ConfigError(
      'registryUrl',
      'Expected a registry URL (postgres://, mysql:// or sqlite:PATH) from --registry-url, FLEET_REGISTRY_URL or `registryUrl` in fleet.config.json, got none',
    );
  }
  return config.registryUrl;
}

/** The configured Postgres URL of the pgboss engine, or a {@link ConfigError} saying how to set it. */
export function requirePgbossUrl(config: FleetConfig): string {
  if (!config.pgbossUrl) {
    throw new ConfigError(
      'pgbossUrl',
      "Expected a Postgres URL for engine 'pgboss' from --pgboss-url, FLEET_PGBOSS_URL, DATABASE_URL or `pgbossUrl` in fleet.config.json, got none",
    );
  }
  if (!/^postgres(ql)?:\/\//.test(config.pgbossUrl)) {
    throw new ConfigError(
      'pgbossUrl',
      `Expected a postgres:// or postgresql:// URL for engine 'pgboss', got ${redactUrl(config.pgbossUrl)}`,
    );
  }
  return config.pgbossUrl;
}
