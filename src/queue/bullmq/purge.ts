/**
 * Purging partitions on the BullMQ engine: every key of a (queue, tenant) partition is
 * BullMQ's `P:Q.T:…` (queue names and slugs hold no `.`, `:` or glob characters), so a
 * SCAN over that pattern finds them all, jobs in every state included, and the tenant
 * leaves the queue's ready and active-tenants sets.
 */
import type { Redis } from 'ioredis';
import type { ReadyIndex } from './ready-index.js';

const SCAN_COUNT = 1000;

/** Deletes the partitions of `queue` (only `tenant`'s when given); resolves to the tenants that had keys. */
export async function purgePartitions(
  redis: Redis,
  index: ReadyIndex,
  prefix: string,
  queue: string,
  tenant: string | null,
): Promise<string[]> {
  const head = `${prefix}:${queue}.`;
  const tenants = new Set<string>();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(
      cursor,
      'MATCH',
      tenant === null ? `${head}*` : `${head}${tenant}:*`,
      'COUNT',
      SCAN_COUNT,
    );
    cursor = next;
    for (const key of keys) tenants.add(key.slice(head.length, key.indexOf(':', head.length)));
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
  const multi = redis.multi();
  if (tenant === null) multi.unlink(index.readyKey(queue), index.activeTenantsKey(queue));
  else multi.zrem(index.readyKey(queue), tenant).zrem(index.activeTenantsKey(queue), tenant);
  await multi.exec();
  return [...tenants].sort();
}
