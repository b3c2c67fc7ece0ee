/** Removing what the demo left on Redis: every key under its prefix. */
import { Redis } from 'ioredis';

/**
 * Deletes every `<prefix>:*` key (SCAN and UNLINK, never KEYS, on a server others use);
 * resolves to how many. The demo's prefix is its own (`fleet-demo` unless --prefix).
 */
export async function deleteRedisPrefix(url: string, prefix: string): Promise<number> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, connectionName: 'tenant-fleet:demo-cleanup' });
  redis.on('error', () => {});
  let removed = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) removed += await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return removed;
}
