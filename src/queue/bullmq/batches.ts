/**
 * Reading a batch record on the BullMQ engine: the `P:#batch:<id>` hash the enqueue and
 * settle scripts count into (see scripts.ts), which expires `batchTtlMs` after its last
 * change; an expired or unknown batch reads as zeros.
 */
import type { Redis } from 'ioredis';
import type { BatchProgress } from '../engine.js';

/** The progress held in the batch hash at `key`. */
export async function readBatchProgress(redis: Redis, key: string): Promise<BatchProgress> {
  const hash = await redis.hgetall(key);
  const total = Number(hash.total ?? 0);
  const completed = Number(hash.completed ?? 0);
  const failed = Number(hash.failed ?? 0);
  return { total, completed, failed, pending: total - completed - failed };
}
