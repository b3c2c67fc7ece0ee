/**
 * The CLI's `fleetBudget` key: the fleet-wide connection budget per database server. In a
 * config file it is an object; `--server-budget` and `FLEET_SERVER_BUDGET` set its limits
 * as `host:port=n` pairs, comma-separated, `*=n` for every other server
 * (`pg-a.internal:5432=90,*=40`), over whatever the file says.
 */
import { z } from 'zod';
import type { FleetBudgetOptions } from '../tenancy/pool/fleet-budget/options.js';
import { MAX_PER_SERVER, MIN_LEASE_TTL_MS } from '../tenancy/pool/fleet-budget/options.js';
import { MAX_DURATION_MS } from '../validate.js';

const limit = z.int().min(1).max(MAX_PER_SERVER);

/** The schema of the `fleetBudget` config key. */
export const fleetBudgetSchema = z
  .object({
    /** Where the leases are kept. @default the config's `redisUrl` */
    redisUrl: z
      .string()
      .regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL')
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

/** TenantPools' `fleetBudget` from the validated config (undefined when not configured). */
export function fleetBudgetOptions(config: {
  fleetBudget?: z.output<typeof fleetBudgetSchema> | undefined;
  redisUrl: string;
  prefix: string;
}): FleetBudgetOptions | undefined {
  const budget = config.fleetBudget;
  if (!budget) return undefined;
  return {
    redis: budget.redisUrl ?? config.redisUrl,
    prefix: budget.prefix ?? `${config.prefix}:budget`,
    ...(budget.perServer ? { perServer: budget.perServer } : {}),
    ...(budget.defaultPerServer !== undefined ? { defaultPerServer: budget.defaultPerServer } : {}),
    ...(budget.leaseTtlMs !== undefined ? { leaseTtlMs: budget.leaseTtlMs } : {}),
  };
}
