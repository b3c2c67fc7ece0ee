/**
 * Purging partitions on the BullMQ engine: every key of a (queue, tenant) partition is
 * BullMQ's `P:{tag}:Q.T:…` (queue names and slugs hold no `.`, `:`, `{` or glob
 * characters), so a SCAN of every master over that pattern finds them all, jobs in every
 * state included, and the tenant leaves its shard's ready, active-tenants and finished sets.
 */
import type { Redis } from 'ioredis';
import { globEscape, type KeyLayout } from './cluster/key-layout.js';
import { scanAll, unlinkKeys } from './cluster/scan.js';

/** Deletes the partitions of `queue` (only `tenant`'s when given); resolves to the tenants that had keys. */
export async function purgePartitions(
  redis: Redis,
  layout: KeyLayout,
  queue: string,
  tenant: string | null,
): Promise<string[]> {
  const tenants = new Set<string>();
  const pattern =
    tenant === null
      ? `${globEscape(layout.prefix)}:{${globEscape(queue)}*}:${globEscape(queue)}.*`
      : `${globEscape(layout.partitionHead(queue, tenant))}*`;
  await scanAll(redis, pattern, async (keys) => {
    const mine = keys.filter((key) => {
      const owner = layout.parsePartitionKey(key);
      if (owner === null || owner.queue !== queue) return false;
      tenants.add(owner.tenant);
      return true;
    });
    if (mine.length > 0) await unlinkKeys(redis, mine);
  });
  const shards = tenant === null ? layout.allShards() : [layout.shardOf(tenant)];
  await Promise.all(
    shards.map((shard) => {
      const ready = layout.readyKey(queue, shard);
      const active = layout.activeTenantsKey(queue, shard);
      return tenant === null
        ? redis.unlink(ready, active, layout.finishedKey(queue, shard))
        : Promise.all([
            redis.multi().zrem(ready, tenant).zrem(active, tenant).exec(),
            forgetFinished(redis, layout.finishedKey(queue, shard), tenant),
          ]);
    }),
  );
  return [...tenants].sort();
}

/**
 * Removes `tenant`'s completed jobs (members `T:id`) from its shard's finished set: their
 * hashes went with the partition, and a member left behind would, once trimmed, delete
 * the hash of a new job enqueued under the same id.
 */
async function forgetFinished(redis: Redis, key: string, tenant: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, entries] = await redis.zscan(key, cursor, 'MATCH', `${globEscape(tenant)}:*`, 'COUNT', 1000);
    cursor = next;
    const members = entries.filter((_, i) => i % 2 === 0);
    if (members.length > 0) await redis.zrem(key, ...members);
  } while (cursor !== '0');
}

/**
 * The queues in which `tenant` has a partition (any of its BullMQ keys) or an entry in the
 * ready index, sorted. The engine keeps no list of queues: this SCANs the prefix's keys.
 */
async function tenantQueues(redis: Redis, layout: KeyLayout, tenant: string): Promise<string[]> {
  const queues = new Set<string>();
  const head = `${globEscape(layout.prefix)}:{`;
  await scanAll(redis, `${head}*}:*.${globEscape(tenant)}:*`, (keys) => {
    for (const key of keys) {
      // `*` may span a `:` (a job id of another partition): keep only this tenant's keys.
      const owner = layout.parsePartitionKey(key);
      if (owner?.tenant === tenant) queues.add(owner.queue);
    }
  });
  await scanAll(redis, `${head}*}:ready`, async (keys) => {
    for (const key of keys) {
      const tag = key.slice(`${layout.prefix}:{`.length, -'}:ready'.length);
      const queue = layout.queueOfTag(tag);
      if (queues.has(queue) || layout.readyKey(queue, layout.shardOf(tenant)) !== key) continue;
      if ((await redis.zscore(key, tenant)) !== null) queues.add(queue);
    }
  });
  return [...queues].sort();
}

/** Purges `tenant`'s partitions of every queue it appears in; resolves to those queues. */
export async function purgeTenant(redis: Redis, layout: KeyLayout, tenant: string): Promise<string[]> {
  const queues = await tenantQueues(redis, layout, tenant);
  for (const queue of queues) await purgePartitions(redis, layout, queue, tenant);
  return queues;
}
