/**
 * The demo's prefix on Redis: claimed when it starts, its keys removed when it stops.
 * `--prefix` or FLEET_PREFIX may name a real fleet's prefix; the demo must not run there,
 * as its jobs would go into that fleet's partitions.
 */
import { Redis } from 'ioredis';
import { ConfigError } from '../../reporting/errors.js';

/** Marks a prefix as the demo's; removed with the rest of its keys. Not a queue's key (those are `<prefix>:{…}`). */
const MARKER = 'tenant-fleet-demo';

/**
 * Claims `prefix` for the demo: one with no key, or one an earlier demo marked (its keys
 * kept with --keep), is the demo's. Throws {@link ConfigError} for a prefix holding keys
 * the demo did not write, naming where the prefix came from (`source`).
 */
export async function claimDemoPrefix(url: string, prefix: string, source: string): Promise<void> {
  await withRedis(url, async (redis) => {
    const marker = `${prefix}:${MARKER}`;
    if ((await redis.exists(marker)) === 0) {
      let foreign = false;
      await scanPrefix(redis, prefix, async () => {
        foreign = true;
        return false;
      });
      if (foreign)
        throw new ConfigError(
          'prefix',
          `Expected a Redis prefix of the demo's own, got ${JSON.stringify(prefix)} (${source}), which holds keys the demo did not write (a fleet's?): name one of its own with --prefix`,
        );
    }
    await redis.set(marker, new Date().toISOString());
  });
}

/**
 * Deletes every `<prefix>:*` key (SCAN and UNLINK, never KEYS, on a server others use);
 * resolves to how many. Only for a prefix {@link claimDemoPrefix} claimed.
 */
export async function deleteRedisPrefix(url: string, prefix: string): Promise<number> {
  let removed = 0;
  await withRedis(url, (redis) =>
    scanPrefix(redis, prefix, async (keys) => {
      removed += await redis.unlink(...keys);
      return true;
    }),
  );
  return removed;
}

async function withRedis<T>(url: string, fn: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, connectionName: 'tenant-fleet:demo-prefix' });
  redis.on('error', () => {});
  try {
    return await fn(redis);
  } finally {
    redis.disconnect();
  }
}

/** SCANs `<prefix>:*`, handing each non-empty batch to `batch` while it returns true. */
async function scanPrefix(
  redis: Redis,
  prefix: string,
  batch: (keys: string[]) => Promise<boolean>,
): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0 && !(await batch(keys))) return;
  } while (cursor !== '0');
}
