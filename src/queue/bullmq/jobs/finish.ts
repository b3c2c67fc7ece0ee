/**
 * Finishing a job (completed, or failed for good) together with its batch count, in
 * one MULTI: BullMQ's own moveToFinished script, then a script that counts the job into
 * its batch only if that moveToFinished really finished it (the job hash carries the
 * very `finishedOn` it was given). So a batch counter never misses or double-counts a
 * job, even when the process dies right after.
 */
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { KeyLayout } from '../cluster/key-layout.js';
import { METRICS_DATA_POINTS, type Partition } from '../partition/partitions.js';
import type { TakeCall } from '../ready-index.js';
import type { FleetCommands, FleetMulti } from '../scripts.js';
import { touchBatchShards } from './batches.js';
import { attemptsOf, batchOf, isLostLock } from './translate.js';

/** What finishing a job needs of its engine: the same for every job, built once. */
export interface FinishSettings {
  /** The engine's command connection, for a batch's list of shards. */
  redis: Redis;
  layout: KeyLayout;
  /** How long a batch hash lives after its last change. */
  batchTtlMs: number;
  /** Finished jobs kept: completed per logical queue (job-moves.ts TRIM_FINISHED), failed per partition. */
  keep: { completed: number; failed: number };
}

/** What `finishJob` needs besides the job. */
export interface FinishContext {
  settings: FinishSettings;
  /** The job's partition (its BullMQ backend is built only for BullMQ's own scripts). */
  partition: Partition;
  queue: string;
  tenant: string;
}

/** The outcome of {@link finishJob}: finished, or the lock was lost to someone else. */
export type FinishResult = 'finished' | 'lost';

/** Moves an active job to completed with `resultJson`. */
export async function completeJob(
  context: FinishContext,
  job: Job,
  token: string,
  resultJson: string,
): Promise<FinishResult> {
  const keep = { count: context.settings.keep.completed };
  const args = context.partition.backend.moveToCompletedArgs(job, resultJson, keep, token, false);
  return finishJob(context, job, args, 'completed');
}

/** Moves an active job to failed for good, keeping the message and stack. */
export async function failJob(
  context: FinishContext,
  job: Job,
  token: string,
  error: Error,
): Promise<FinishResult> {
  const stacktrace = [...(job.stacktrace ?? []), ...(error.stack ? [error.stack] : [])];
  const args = context.partition.backend.moveToFailedArgs(
    job,
    error.message,
    { count: context.settings.keep.failed },
    token,
    false,
    {
      failedReason: error.message,
      stacktrace: JSON.stringify(stacktrace),
    },
  );
  return finishJob(context, job, args, 'failed');
}

/**
 * Fails a job: for good when its attempts are spent or it is unrecoverable (`failJob`),
 * else by BullMQ's own retry, which backs it off into delayed (or straight back to
 * waiting). 'retried': its partition has a job again; 'lost': the lock had gone to
 * someone else, who runs the job again.
 */
export async function failOrRetry(
  context: FinishContext,
  job: Job,
  token: string,
  cause: Error,
  unrecoverable: boolean,
): Promise<'failed' | 'retried' | 'lost'> {
  const exhausted = job.attemptsMade + 1 >= attemptsOf(job);
  try {
    if (exhausted || unrecoverable || cause.name === 'UnrecoverableError')
      return (await failJob(context, job, token, cause)) === 'lost' ? 'lost' : 'failed';
    await job.moveToFailed(cause, token, false);
    return 'retried';
  } catch (failure) {
    if (isLostLock(failure)) return 'lost';
    throw failure;
  }
}

/**
 * Completes a job (without a batch) and, if that went through, takes the next job of a
 * partition of the same shard in the same script call (scripts.ts FINISH_AND_TAKE, with
 * `take` from `ReadyIndex.takeCall`), settling the finished job's partition too when
 * `settleTenant` (its tenant) is given. `next` is the take's raw reply, null when the
 * completion was refused.
 */
export async function completeAndTake(
  context: FinishContext,
  job: Job,
  token: string,
  resultJson: string,
  take: TakeCall,
  settleTenant: string | null,
): Promise<{ outcome: FinishResult; next: unknown }> {
  const { partition } = context;
  const client = (await partition.client) as FleetCommands;
  const [code, next] = await client.fleetFinishAndTake(
    ...take.keys,
    partition.prefix,
    settleTenant ?? '',
    ...completionArgs(context, job, token, resultJson, null),
    ...take.args,
  );
  const refused = refusal(partition, job, code);
  if (refused !== null) return { outcome: refused, next: null };
  return { outcome: 'finished', next };
}

/**
 * Completes a job (without a batch) and takes the partition's next job in one call, as a
 * plain BullMQ Worker does (locked with the same token for `nextLockMs`), with TAKE's
 * announcement and settle around it (scripts.ts FINISH_NEXT, with `take` from
 * `ReadyIndex.takeCall`). `next` is the raw reply. With `nextLockMs` null, it completes
 * the job and retires the partition (it was the last job waiting).
 */
export async function completeAndNext(
  context: FinishContext,
  job: Job,
  token: string,
  resultJson: string,
  take: TakeCall,
  nextLockMs: number | null,
): Promise<{ outcome: FinishResult; next: unknown }> {
  const client = (await context.partition.client) as FleetCommands;
  const args = completionArgs(context, job, token, resultJson, nextLockMs);
  const code = await client.fleetFinishNext(...take.keys, ...args, ...take.args);
  return { outcome: refusal(context.partition, job, code) ?? 'finished', next: code };
}

/**
 * The 8 arguments of job-moves.ts `finish` completing `job`: plain strings and numbers, no
 * msgpack (a command with a Buffer argument costs ioredis far more CPU to write).
 * `nextLockMs`: take the partition's next job, locked with `token` for that long.
 */
function completionArgs(
  context: FinishContext,
  job: Job,
  token: string,
  resultJson: string,
  nextLockMs: number | null,
): (string | number)[] {
  return [
    job.id!,
    Date.now(),
    resultJson,
    nextLockMs === null ? '0' : '1',
    token,
    nextLockMs ?? '',
    context.settings.keep.completed,
    METRICS_DATA_POINTS,
  ];
}

/** null when moveToFinished finished the job; else 'lost', or throws BullMQ's error. */
function refusal(partition: Partition, job: Job, code: unknown): 'lost' | null {
  if (typeof code !== 'number' || code >= 0) return null;
  const error = partition.backend.finishedErrors({
    code,
    jobId: job.id,
    command: 'moveToFinished',
    state: 'active',
  });
  if (isLostLock(error)) return 'lost';
  throw error;
}

async function finishJob(
  context: FinishContext,
  job: Job,
  args: (string | number | boolean | Buffer)[],
  target: 'completed' | 'failed',
): Promise<FinishResult> {
  const { partition } = context;
  const { backend } = partition;
  // moveToFinished's ARGV[2] (right after its 14 keys) is the finishedOn timestamp.
  const finishedOn = args[backend.moveToFinishedKeys.length + 1];
  const client = await backend.client;
  const batchId = batchOf(job);
  let code: unknown;
  if (batchId === null) {
    // No batch to count: a plain script call (an ioredis MULTI costs far more CPU to build).
    code = await backend.execCommand(client, 'moveToFinished', args);
  } else {
    const multi = client.multi() as unknown as FleetMulti;
    backend.execCommand(multi as never, 'moveToFinished', args);
    const { redis, layout, batchTtlMs } = context.settings;
    // The batch's counts hash in the job's shard, and its list of shards (a key of its own slot).
    const counts = layout.batchCountsKey(layout.tag(context.queue, layout.shardOf(context.tenant)), batchId);
    multi.fleetBatchSettle(backend.toKey(job.id!), counts, target, String(finishedOn), batchTtlMs);
    const [results] = await Promise.all([multi.exec(), touchBatchShards(redis, layout, batchId, batchTtlMs)]);
    const [error, result] = (results ?? [])[0] ?? [new Error('missing MULTI result'), null];
    if (error) throw error;
    code = result;
  }
  return refusal(partition, job, code) ?? 'finished';
}
