/**
 * Lock upkeep for jobs fetched by hand. BullMQ renews locks and sweeps stalled jobs only
 * for Workers that `run()`; the fleet runs BullMQ's moveToActive script itself, with no
 * Worker (partitions.ts), so both are done here:
 * lock extensions batched into one script call per partition, and stalled sweeps over
 * every partition that may hold active jobs (the `active-tenants` set).
 */
import type { RedisQueueBackend } from 'bullmq';
import type { ActiveJob } from '../../engine.js';
import type { PartitionCache } from '../partition/partitions.js';
import type { ReadyIndex } from '../ready-index.js';
import type { BullMqLease } from './translate.js';

/** Partitions swept at once by `recoverStalled`, to bound the burst on Redis. */
const SWEEP_CONCURRENCY = 32;

/** Extends the locks of `jobs`; resolves to the ids whose lock was lost. */
export async function extendLocks(jobs: readonly ActiveJob[], lockDurationMs: number): Promise<string[]> {
  // By the partition handle each job's lease keeps (no cache lookup that would reorder the LRU).
  const groups = new Map<string, { backend: RedisQueueBackend; ids: string[]; tokens: string[] }>();
  for (const job of jobs) {
    const { token, partition } = job.lease as BullMqLease;
    const key = `${job.queue}\u0000${job.tenant}`;
    let group = groups.get(key);
    if (!group) {
      group = { backend: partition.backend, ids: [], tokens: [] };
      groups.set(key, group);
    }
    group.ids.push(job.id);
    group.tokens.push(token);
  }
  const lost = await Promise.all(
    [...groups.values()].map((group) => group.backend.extendLocks(group.ids, group.tokens, lockDurationMs)),
  );
  return lost.flat();
}

/**
 * Sweeps every partition of `queue` that may hold active jobs: BullMQ's own stalled
 * script puts jobs whose lock expired back to wait (or fails them past
 * `maxStalledCount`), then the partition is re-listed as ready and, once idle,
 * forgotten as active. BullMQ marks suspects on one sweep and moves them on a later
 * one at least `stalledIntervalMs` apart, fleet-wide, so a dead worker's job comes back
 * within lock duration + stalled interval + the caller's sweep period.
 */
export async function recoverStalled(
  partitions: PartitionCache,
  index: ReadyIndex,
  queue: string,
): Promise<number> {
  const tenants = await index.activeTenants(queue);
  let moved = 0;
  for (let i = 0; i < tenants.length; i += SWEEP_CONCURRENCY) {
    const counts = await Promise.all(
      tenants.slice(i, i + SWEEP_CONCURRENCY).map(async (tenant) => {
        const stalled = await partitions.backend(queue, tenant).moveStalledJobsToWait();
        await index.reconcile(queue, tenant, partitions.keys(queue, tenant));
        return stalled.length;
      }),
    );
    moved += counts.reduce((a, b) => a + b, 0);
  }
  if (moved > 0) await index.publish(queue);
  return moved;
}
