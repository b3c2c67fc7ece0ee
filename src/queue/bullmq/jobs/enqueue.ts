/**
 * One MULTI of an enqueue on the BullMQ engine: the jobs, their tenants' ready-index
 * entries, batch counts and the wake-up message travel together, so a reader never
 * sees a job without its tenant listed.
 */
import { randomUUID } from 'node:crypto';
import type { EnqueueOutcome } from '../../engine.js';
import { getOrCreate } from '../../get-or-create.js';
import type { NormalisedJob } from '../../job-input.js';
import type { KeyLayout } from '../cluster/key-layout.js';
import type { ResolvedBullMqEngineOptions } from '../options.js';
import type { PartitionCache } from '../partition/partitions.js';
import type { ReadyIndex } from '../ready-index.js';
import type { FleetMulti } from '../scripts.js';
import { recordBatchShards } from './batches.js';
import { toBullJobJson } from './translate.js';

/** Jobs per MULTI: keeps each EXEC short for the other clients. */
const MULTI_CHUNK = 500;

/**
 * Adds `jobs` (already validated) in MULTIs of up to 500 jobs of one shard each (a MULTI
 * stays within one hash slot on Redis Cluster); ids in order, and how many were new.
 */
export async function enqueueJobs(
  partitions: PartitionCache,
  index: ReadyIndex,
  layout: KeyLayout,
  options: ResolvedBullMqEngineOptions,
  queue: string,
  jobs: readonly NormalisedJob[],
): Promise<EnqueueOutcome> {
  const outcome: EnqueueOutcome = { ids: new Array<string>(jobs.length), added: 0 };
  const byShard = new Map<number, number[]>();
  jobs.forEach((job, i) => {
    getOrCreate(byShard, layout.shardOf(job.tenant), () => []).push(i);
  });
  const batches = new Map<string, Set<string>>();
  for (const job of jobs)
    if (job.batchId !== null)
      getOrCreate(batches, job.batchId, () => new Set()).add(layout.tag(queue, layout.shardOf(job.tenant)));
  // Listed before the jobs exist: a shard listed early reads as zeros until then.
  await recordBatchShards(partitions.redis, layout, batches, options.batchTtlMs);
  await Promise.all(
    [...byShard.values()].map(async (positions) => {
      for (let i = 0; i < positions.length; i += MULTI_CHUNK) {
        const chunk = positions.slice(i, i + MULTI_CHUNK);
        const { ids, added } = await enqueueChunk(
          partitions,
          index,
          layout,
          options,
          queue,
          chunk.map((position) => jobs[position]!),
        );
        chunk.forEach((position, j) => {
          outcome.ids[position] = ids[j]!;
        });
        outcome.added += added;
      }
    }),
  );
  return outcome;
}

/**
 * Adds `jobs` (already validated, all of one shard) to `queue` in one MULTI; resolves to
 * their ids in order and how many were new (an EXISTS of the job's hash, in the same
 * MULTI, before its add).
 */
async function enqueueChunk(
  partitions: PartitionCache,
  index: ReadyIndex,
  layout: KeyLayout,
  options: ResolvedBullMqEngineOptions,
  queue: string,
  jobs: readonly NormalisedJob[],
): Promise<EnqueueOutcome> {
  const now = Date.now();
  const client = await partitions.backend(queue, jobs[0]!.tenant).client;
  const multi = client.multi() as unknown as FleetMulti;
  const tag = layout.tag(queue, layout.shardOf(jobs[0]!.tenant));
  const readyAt = new Map<string, number>();
  const addIndexes: number[] = [];
  // Per job, the index of its EXISTS reply; -1 for a job with a fresh id (always new).
  const existsIndexes: number[] = [];
  let commands = 0;
  for (const job of jobs) {
    const backend = partitions.backend(queue, job.tenant);
    // Our own ids rather than BullMQ's per-queue counter, so that an id names one job
    // across all of a queue's partitions, as it does on the memory engine.
    const id = job.jobId ?? randomUUID();
    if (job.jobId === null) existsIndexes.push(-1);
    else {
      multi.exists(backend.toKey(id));
      existsIndexes.push(commands++);
    }
    // Queued synchronously on the MULTI; its outcome is read from exec's results.
    backend.addJobToTransaction(multi as never, toBullJobJson(job, now) as never, id).catch(() => {});
    addIndexes.push(commands++);
    if (job.batchId !== null) {
      const batchKey = layout.batchCountsKey(tag, job.batchId);
      if (job.jobId === null) {
        multi.hincrby(batchKey, 'total', 1);
        multi.pexpire(batchKey, options.batchTtlMs);
        commands += 2;
      } else {
        multi.fleetBatchAdd(backend.toKey(job.jobId), batchKey, options.batchTtlMs);
        commands++;
      }
    }
    const at = now + job.delayMs;
    readyAt.set(job.tenant, Math.min(readyAt.get(job.tenant) ?? at, at));
  }
  for (const [tenant, at] of readyAt) {
    index.announceIn(multi, queue, tenant, at);
    // No part of the fleet reads a partition's BullMQ events: keep BullMQ from growing
    // the stream (one stream node at most) and drop what is there (scripts.ts RETIRE).
    const { meta, events } = partitions.backend(queue, tenant).keys;
    // An object, not a field and a value: BullMQ's MULTI takes hset's fields that way
    // only, and made one field per character of a field name given as such.
    multi.hset(meta!, { 'opts.maxLenEvents': 0 });
    multi.del(events!);
  }
  index.publishIn(multi, queue);
  const results = (await multi.exec()) ?? [];
  const ids = addIndexes.map((i) => {
    const [error, id] = results[i] ?? [new Error('missing MULTI result'), null];
    if (error) throw error;
    if (typeof id === 'number' && id < 0) throw new Error(`BullMQ refused the job (code ${id})`);
    return String(id);
  });
  const added = existsIndexes.filter((i) => i === -1 || results[i]?.[1] === 0).length;
  return { ids, added };
}
