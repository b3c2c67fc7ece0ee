/**
 * SCAN over every master: on a single Redis that is the server itself, on a Redis
 * Cluster every master of the current topology (a key lives on exactly one of them).
 * And UNLINK of keys found that way, grouped by hash tag so that each command stays
 * within one slot.
 */
import type { Redis } from 'ioredis';
import { asCluster } from './connection.js';

/** Keys examined per SCAN call. */
const SCAN_COUNT = 1000;

/** The servers a SCAN must visit to see every key. */
export async function scanTargets(redis: Redis): Promise<Redis[]> {
  const cluster = asCluster(redis);
  if (!cluster) return [redis];
  // The node list fills once the cluster has connected; a PING waits for that.
  if (cluster.nodes('master').length === 0) await cluster.ping();
  return cluster.nodes('master');
}

/** A stable name of a scan target, to keep a SCAN cursor per master. */
export function targetName(node: Redis): string {
  return `${node.options.host}:${node.options.port}`;
}

/** Calls `each` with every batch of keys matching `pattern`, on every master. */
export async function scanAll(
  redis: Redis,
  pattern: string,
  each: (keys: string[]) => Promise<void> | void,
): Promise<void> {
  for (const node of await scanTargets(redis)) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
      cursor = next;
      if (keys.length > 0) await each(keys);
    } while (cursor !== '0');
  }
}

/** The hash tag of a key as Redis Cluster reads it (the key itself when it has none). */
function hashTag(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

/** Unlinks `keys`, one command per hash tag (so per slot on a cluster). */
export async function unlinkKeys(redis: Redis, keys: readonly string[]): Promise<void> {
  const groups = new Map<string, string[]>();
  for (const key of keys) {
    const tag = hashTag(key);
    const group = groups.get(tag);
    if (group) group.push(key);
    else groups.set(tag, [key]);
  }
  await Promise.all([...groups.values()].map((group) => redis.unlink(...group)));
}
