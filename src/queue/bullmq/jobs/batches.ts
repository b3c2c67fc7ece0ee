/**
 * Batch records on the BullMQ engine. A batch's jobs may be spread over several shards
 * (hash slots), and its counts move in the same script as its jobs, so each shard keeps
 * its own counts hash `P:{Q#s}:#batch:<id>` (see scripts.ts), and the set
 * `P:#batch:<id>` lists the shards that have some. Both expire `batchTtlMs` after their
 * last change; an expired or unknown batch reads as zeros.
 */
import type { Redis } from 'ioredis';
import type { BatchProgress } from '../../engine.js';
import type { KeyLayout } from '../cluster/key-layout.js';

/** Lists, for each batch, the shard tags its jobs are about to be added to. */
export async function recordBatchShards(
  redis: Redis,
  layout: KeyLayout,
  batches: ReadonlyMap<string, ReadonlySet<string>>,
  ttlMs: number,
): Promise<void> {
  await Promise.all(
    [...batches].map(([batchId, tags]) => {
      const key = layout.batchShardsKey(batchId);
      return redis
        .multi()
        .sadd(key, ...tags)
        .pexpire(key, ttlMs)
        .exec();
    }),
  );
}

/** Keeps the list of a batch's shards alive as long as its counts (after a job finished). */
export async function touchBatchShards(
  redis: Redis,
  layout: KeyLayout,
  batchId: string,
  ttlMs: number,
): Promise<void> {
  await redis.pexpire(layout.batchShardsKey(batchId), ttlMs);
}

/** The progress of a batch: the sum of its shards' counts. */
export async function readBatchProgress(
  redis: Redis,
  layout: KeyLayout,
  batchId: string,
): Promise<BatchProgress> {
  const tags = await redis.smembers(layout.batchShardsKey(batchId));
  const hashes = await Promise.all(tags.map((tag) => redis.hgetall(layout.batchCountsKey(tag, batchId))));
  let [total, completed, failed] = [0, 0, 0];
  for (const hash of hashes) {
    total += Number(hash.total ?? 0);
    completed += Number(hash.completed ?? 0);
    failed += Number(hash.failed ?? 0);
  }
  return { total, completed, failed, pending: total - completed - failed };
}
