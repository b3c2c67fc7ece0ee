/**
 * Opens what the fleet-running commands need, from the configuration: the registry,
 * the tenant pools (with the process's connection budget) and the fleet on its engine,
 * after checking that Redis (bullmq engine) answers, and before returning that Postgres
 * (pgboss engine) does;
 * and closes them in reverse order, each step on its own.
 */
import { Fleet } from '../fleet.js';
import { PgBossEngine } from '../queue/pgboss/pgboss-engine.js';
import type { Logger } from '../reporting/logger.js';
import type { FleetBudgetOptions } from '../tenancy/pool/fleet-budget/options.js';
import type { OrgRegistry } from '../tenancy/registry/org-registry.js';
import { TenantPools } from '../tenancy/tenant-pools/tenant-pools.js';
import { type FleetConfig, requirePgbossUrl } from './config/config.js';
import { fleetBudgetOptions } from './config/fleet-budget-config.js';
import { openRegistry } from './context.js';
import { checkRedis } from './process/preflight.js';
import { watchRedis } from './process/redis-watch.js';

/** A fleet and what it runs on; `close()` closes them all, idempotently. */
export interface FleetHandle extends AsyncDisposable {
  readonly config: FleetConfig;
  readonly logger: Logger;
  readonly registry: OrgRegistry;
  readonly pools: TenantPools;
  readonly fleet: Fleet;
  close(): Promise<void>;
}

/** Opens registry, pools and fleet as `config` says. */
export async function openFleet(config: FleetConfig, logger: Logger): Promise<FleetHandle> {
  const steps: Array<[string, () => Promise<unknown>]> = [];
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      for (const [step, run] of steps.reverse()) {
        try {
          await run();
        } catch (err) {
          logger.error({ err, step }, 'close step failed');
        }
      }
    })();
    return closing;
  };
  try {
    await checkRedis(config);
    const registry = await openRegistry(config, logger);
    steps.push(['registry', () => registry.close()]);
    const pools = await TenantPools.open({
      registry,
      maxConnections: config.budget,
      ...(config.maxCachedPools ? { maxCachedPools: config.maxCachedPools } : {}),
      ...(config.acquireTimeoutMs ? { acquireTimeoutMs: config.acquireTimeoutMs } : {}),
      ...(config.fleetBudget
        ? { fleetBudget: fleetBudgetOptions(config, () => requirePgbossUrl(config)) as FleetBudgetOptions }
        : {}),
      logger,
    });
    steps.push(['pools', () => pools.close()]);
    const fleet = await Fleet.open({
      engine: config.engine,
      ...(config.engine === 'bullmq' ? { redis: config.redisUrl } : {}),
      ...(config.engine === 'pgboss' ? { database: requirePgbossUrl(config) } : {}),
      prefix: config.prefix,
      registry,
      pools,
      logger,
    });
    steps.push(['fleet', () => fleet.close()]);
    // Postgres is reached lazily; reach it now, so a wrong URL fails the command at once.
    if (fleet.engine instanceof PgBossEngine) await fleet.engine.boss();
    const unwatch = watchRedis(fleet.engine, config.redisUrl, logger);
    steps.push(['redis watch', async () => unwatch()]);
    return { config, logger, registry, pools, fleet, close, [Symbol.asyncDispose]: close };
  } catch (err) {
    await close();
    throw err;
  }
}
