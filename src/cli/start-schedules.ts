/** Starts the configured fan-out schedules on a fleet, with the state store its engine calls for. */
import { Redis } from 'ioredis';
import { redactUrl } from '../reporting/errors.js';
import { RedisScheduleStore } from '../scheduler/redis-state-store.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import { SqlScheduleStore } from '../scheduler/sql-state-store.js';
import type { ScheduleStateStore } from '../scheduler/state-store.js';
import { requireRegistryUrl, type ScheduleConfig } from './config/config.js';
import type { FleetHandle } from './open-fleet.js';

/** A running scheduler and what it holds; `close()` stops it and releases its store. */
export interface RunningSchedules {
  readonly scheduler: Scheduler;
  close(): Promise<void>;
}

/**
 * The store for last ticks: Redis (next to the jobs) on the bullmq engine, the registry
 * database on the pgboss and memory engines, so a restarted process still knows what it missed.
 */
function storeFor(handle: FleetHandle): { store: ScheduleStateStore; release: () => Promise<void> } {
  const { config } = handle;
  if (config.engine === 'bullmq') {
    const redis = new Redis(config.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 3 });
    // Said once per outage, not on every reconnect attempt (ioredis prints an
    // "Unhandled error event" of its own for an emitter without a listener).
    let down = false;
    redis.on('error', (err: Error) => {
      if (down) return;
      down = true;
      handle.logger.warn(
        { err: redactUrl(err.message), redis: redactUrl(config.redisUrl) },
        'schedule store: Redis unreachable, retrying',
      );
    });
    redis.on('ready', () => {
      if (!down) return;
      down = false;
      handle.logger.info({ redis: redactUrl(config.redisUrl) }, 'schedule store: Redis is back');
    });
    const store = new RedisScheduleStore({ redis, prefix: config.prefix });
    return { store, release: async () => void (await redis.quit().catch(() => redis.disconnect())) };
  }
  const store = new SqlScheduleStore({ url: requireRegistryUrl(config) });
  return { store, release: () => store.close() };
}

/** Registers every schedule (catching up missed ticks first) and arms their timers. */
export async function startSchedules(
  handle: FleetHandle,
  schedules: readonly ScheduleConfig[],
  pageSize?: number,
): Promise<RunningSchedules> {
  const { store, release } = storeFor(handle);
  const scheduler = handle.fleet.scheduler({
    store,
    logger: handle.logger,
    ...(pageSize ? { pageSize } : {}),
  });
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      await scheduler.close();
      await release();
    })();
    return closing;
  };
  try {
    for (const schedule of schedules) {
      const info = await scheduler.fanOut(schedule);
      handle.logger.info(
        {
          schedule: info.id,
          cron: info.cron,
          queue: info.queue,
          nextTick: info.nextTick?.toISOString() ?? null,
        },
        'schedule armed',
      );
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { scheduler, close };
}
