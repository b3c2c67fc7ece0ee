/**
 * The queue engine a configuration names, for the commands that read or change jobs
 * without running a fleet (status, dashboard, purge, orgs remove --purge-jobs).
 */
import type { QueueEngine } from '../queue/engine.js';
import { type FleetConfig, requirePgbossUrl } from './config/config.js';
import { checkRedis } from './process/preflight.js';

/**
 * Opens the configured engine; the caller closes it. A Redis that does not answer is
 * reported first, as every command reports it (process/preflight.ts checkRedis), rather
 * than by the engine's first command failing after its retries.
 */
export async function engineFor(config: FleetConfig): Promise<QueueEngine> {
  if (config.engine === 'bullmq') {
    await checkRedis(config);
    const { BullMqEngine } = await import('../queue/bullmq/bullmq-engine.js');
    return new BullMqEngine({ connection: config.redisUrl, prefix: config.prefix });
  }
  if (config.engine === 'pgboss') {
    const { PgBossEngine } = await import('../queue/pgboss/pgboss-engine.js');
    return new PgBossEngine({ database: requirePgbossUrl(config) });
  }
  const { MemoryEngine } = await import('../queue/memory/memory-engine.js');
  return new MemoryEngine();
}
