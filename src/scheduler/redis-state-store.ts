import type { Redis } from 'ioredis';
import type { ScheduleStateStore } from './state-store.js';

// Raise-only SET: compare and write in one step on the server, so two schedulers
// recording different ticks at once leave the later one.
const RECORD_SCRIPT = `
local current = redis.call('GET', KEYS[1])
if (not current) or tonumber(current) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1`;

/** Options of {@link RedisScheduleStore}. */
export interface RedisScheduleStoreOptions {
  /** An ioredis client; the store does not close it (its owner does). */
  redis: Redis;
  /** Key prefix, the fleet's. @default 'fleet' */
  prefix?: string;
}

/**
 * Keeps each schedule's last tick (epoch ms) at `<prefix>:#scheduler:last-tick:<id>`:
 * `#` never occurs in a queue name, so no BullMQ key can meet it.
 */
export class RedisScheduleStore implements ScheduleStateStore {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(options: RedisScheduleStoreOptions) {
    this.#redis = options.redis;
    this.#prefix = options.prefix ?? 'fleet';
  }

  #key(scheduleId: string): string {
    return `${this.#prefix}:#scheduler:last-tick:${scheduleId}`;
  }

  async lastTick(scheduleId: string): Promise<Date | null> {
    const value = await this.#redis.get(this.#key(scheduleId));
    return value === null ? null : new Date(Number(value));
  }

  async recordTick(scheduleId: string, tick: Date): Promise<void> {
    await this.#redis.eval(RECORD_SCRIPT, 1, this.#key(scheduleId), String(tick.getTime()));
  }

  async close(): Promise<void> {}
}
