/**
 * Finishing a job (completed, or failed for good) together with its batch count, in
 * one MULTI: BullMQ's own moveToFinished script, then a script that counts the job into
 * its batch only if that moveToFinished really finished it (the job hash carries the
 * very `finishedOn` it was given). So a batch counter never misses or double-counts a
 * job, even when the process dies right after.
 */
import type { Job } from 'bullmq';
import { METRICS_DATA_POINTS, type Partition } from '../partition/partitions.js';
import type { TakeCall } from '../ready-index.js';
import type { FleetCommands, FleetMulti } from '../scripts.js';
import { batchOf, isLostLock } from './translate.js';

/** What `finishJob` needs besides the job. */
export interface FinishContext {
  /** The job's partition (its BullMQ backend is built only for BullMQ's own scripts). */
  partition: Partition;
  /** The counts hash of a batch in the job's shard. */
  batchKey: (batchId: string) => string;
  /** Refreshes the expiry of the batch's list of shards (a key of its own slot). */
  touchBatch: (batchId: string) => Promise<void>;
  /** How long a batch hash lives after its last change. */
  batchTtlMs: number;
  /** Finished jobs each partition keeps (BullMQ's removeOnComplete / removeOnFail counts). */
  keep: { completed: number; failed: number };
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
  const keep = { count: context.keep.completed };
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
    { count: context.keep.failed },
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
    context.keep.completed,
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
    multi.fleetBatchSettle(
      backend.toKey(job.id!),
      context.batchKey(batchId),
      target,
      String(finishedOn),
      context.batchTtlMs,
    );
    const [results] = await Promise.all([multi.exec(), context.touchBatch(batchId)]);
    const [error, result] = (results ?? [])[0] ?? [new Error('missing MULTI result'), null];
    if (error) throw error;
    code = result;
  }
  return refusal(partition, job, code) ?? 'finished';
}
