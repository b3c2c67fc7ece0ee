/**
 * The CLI's `fleetBudget` key: the fleet-wide connection budget per database server. In a
 * config file it is an object; `--server-budget` and `FLEET_SERVER_BUDGET` set its limits
 * as `host:port=n` pairs, comma-separated, `*=n` for every other server
 * (`pg-a.internal:5432=90,*=40`), over whatever the file says.
 *
 * Where the leases are kept: `fleetBudget.redisUrl` or `fleetBudget.postgresUrl` when
 * given; else the engine's own store: the pg-boss database on the pgboss engine (a fleet
 * that runs on Postgres alone needs no Redis for its budget either), the config's
 * `redisUrl` on the others.
 */
import { z } from 'zod';
import type { FleetBudgetOptions } from '../../tenancy/pool/fleet-budget/options.js';
import { MAX_PER_SERVER, MIN_LEASE_TTL_MS } from '../../tenancy/pool/fleet-budget/options.js';
import { MAX_DURATION_MS } from '../../validate.js';

const limit = z.int().min(1).max(MAX_PER_SERVER);

/** The schema of the `fleetBudget` config key. */
export const fleetBudgetSchema = z
  .object({
    /** Keep the leases in this Redis. @default the config's `redisUrl`, except on the pgboss engine */
    redisUrl: z
      .string()
      .regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL')
      .optional(),
    /** Keep the leases in this Postgres. @default the pg-boss database on the pgboss engine */
    postgresUrl: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'expected a postgres:// or postgresql:// URL')
      .optional(),
    perServer: z
      .record(z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):\d{1,5}$/, 'expected host:port'), limit)
      .optional(),
    defaultPerServer: limit.optional(),
    leaseTtlMs: z.int().min(MIN_LEASE_TTL_MS).max(Math.min(MAX_DURATION_MS, 3_600_000)).optional(),
    /** @default `<prefix>:budget` */
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9:._-]{1,100}$/)
      .optional(),
  })
  .strict()
  .refine((value) => value.perServer !== undefined || value.defaultPerServer !== undefined, {
    message: 'expected perServer or defaultPerServer',
  })
  .refine((value) => value.redisUrl === undefined || value.postgresUrl === undefined, {
    message: 'expected one of redisUrl and postgresUrl',
    path: ['postgresUrl'],
  });

/**
 * The value of `--server-budget` / `FLEET_SERVER_BUDGET` merged over the file's
 * `fleetBudget`; the raw string when it does not parse (the schema then says what is wrong).
 */
export function serverBudgetValue(current: unknown, raw: string): unknown {
  const perServer: Record<string, number> = {};
  let defaultPerServer: number | undefined;
  for (const pair of raw.split(',')) {
    const match = /^\s*(.+?)\s*=\s*(\d+)\s*$/.exec(pair);
    if (!match) return raw;
    if (match[1] === '*') defaultPerServer = Number(match[2]);
    else perServer[match[1] as string] = Number(match[2]);
  }
  const base = typeof current === 'object' && current !== null ? (current as Record<string, unknown>) : {};
  return {
    ...base,
    ...(Object.keys(perServer).length > 0 ? { perServer } : {}),
    ...(defaultPerServer !== undefined ? { defaultPerServer } : {}),
  };
}

/**
 * TenantPools' `fleetBudget` from the validated config (undefined when not configured).
 * `pgbossUrl` is asked for only when the leases go to the pg-boss database.
 */
export function fleetBudgetOptions(
  config: {
    fleetBudget?: z.output<typeof fleetBudgetSchema> | undefined;
    engine: string;
    redisUrl: string;
    prefix: string;
  },
  pgbossUrl: () => string,
): FleetBudgetOptions | undefined {
  const budget = config.fleetBudget;
  if (!budget) return undefined;
  const store = budget.postgresUrl
    ? { postgres: budget.postgresUrl }
    : budget.redisUrl
      ? { redis: budget.redisUrl }
      : config.engine === 'pgboss'
        ? { postgres: pgbossUrl() }
        : { redis: config.redisUrl };
  return {
    ...store,
    // A Postgres schema's name: `fleet_budget` rather than `fleet:budget`, so that it needs
    // no quotes in psql.
    prefix: budget.prefix ?? ('postgres' in store ? `${config.prefix}_budget` : `${config.prefix}:budget`),
    ...(budget.perServer ? { perServer: budget.perServer } : {}),
    ...(budget.defaultPerServer !== undefined ? { defaultPerServer: budget.defaultPerServer } : {}),
    ...(budget.leaseTtlMs !== undefined ? { leaseTtlMs: budget.leaseTtlMs } : {}),
  };
}
