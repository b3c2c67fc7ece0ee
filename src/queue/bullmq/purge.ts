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
  if (tenant === null)
    multi.unlink(index.readyKey(queue), index.activeTenantsKey(queue), index.finishedKey(queue));
  else multi.zrem(index.readyKey(queue), tenant).zrem(index.activeTenantsKey(queue), tenant);
  await multi.exec();
  return [...tenants].sort();
}

/**
 * The queues in which `tenant` has a partition (any of its BullMQ keys) or an entry in the
 * ready index, sorted. The engine keeps no list of queues: this SCANs the prefix's keys.
 */
async function tenantQueues(
  redis: Redis,
  index: ReadyIndex,
  prefix: string,
  tenant: string,
): Promise<string[]> {
  const queues = new Set<string>();
  const scan = async (pattern: string, each: (key: string) => Promise<void> | void) => {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
      cursor = next;
      for (const key of keys) await each(key);
    } while (cursor !== '0');
  };
  const head = `${prefix}:`;
  await scan(`${head}*.${tenant}:*`, (key) => {
    // `*` may span a `:` (a job id of another partition): keep only `P:Q.T:…` with Q plain.
    const rest = key.slice(head.length);
    const dot = rest.indexOf('.');
    const queue = rest.slice(0, dot);
    if (dot > 0 && !queue.includes(':') && rest.startsWith(`${tenant}:`, dot + 1)) queues.add(queue);
  });
  await scan(`${head}*:ready`, async (key) => {
    const queue = key.slice(head.length, -':ready'.length);
    if (queue.includes(':') || queues.has(queue) || index.readyKey(queue) !== key) return;
    if ((await redis.zscore(key, tenant)) !== null) queues.add(queue);
  });
  return [...queues].sort();
}

/** Purges `tenant`'s partitions of every queue it appears in; resolves to those queues. */
export async function purgeTenant(
  redis: Redis,
  index: ReadyIndex,
  prefix: string,
  tenant: string,
): Promise<string[]> {
  const queues = await tenantQueues(redis, index, prefix, tenant);
  for (const queue of queues) await purgePartitions(redis, index, prefix, queue, tenant);
  return queues;
}
