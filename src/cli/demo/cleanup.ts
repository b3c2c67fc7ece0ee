/** Removing what the demo left on Redis: every key under its prefix. */
import { Redis } from 'ioredis';

/**
 * Deletes every `<prefix>:*` key (SCAN and UNLINK, never KEYS, on a server others use);
 * resolves to how many. Only for a prefix that held no key when the demo started
 * ({@link hasRedisKeys}): `--prefix` or FLEET_PREFIX may name a real fleet's.
 */
export async function deleteRedisPrefix(url: string, prefix: string): Promise<number> {
  let removed = 0;
  await scanPrefix(url, prefix, async (redis, keys) => {
    removed += await redis.unlink(...keys);
    return true;
  });
  return removed;
}

/** Whether any `<prefix>:*` key exists (a SCAN that stops at the first). */
export async function hasRedisKeys(url: string, prefix: string): Promise<boolean> {
  let found = false;
  await scanPrefix(url, prefix, async () => {
    found = true;
    return false;
  });
  return found;
}

/** SCANs `<prefix>:*`, handing each non-empty batch to `batch` while it returns true. */
async function scanPrefix(
  url: string,
  prefix: string,
  batch: (redis: Redis, keys: string[]) => Promise<boolean>,
): Promise<void> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, connectionName: 'tenant-fleet:demo-cleanup' });
  redis.on('error', () => {});
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0 && !(await batch(redis, keys))) return;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
