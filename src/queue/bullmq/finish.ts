/**
 * Finishing a job (completed, or failed for good) together with its batch count, in
 * one MULTI: BullMQ's own moveToFinished script, then a script that counts the job into
 * its batch only if that moveToFinished really finished it (the job hash carries the
 * very `finishedOn` it was given). So a batch counter never misses or double-counts a
 * job, even when the process dies right after.
 */
import type { Job, RedisQueueBackend } from 'bullmq';
import { pack } from 'msgpackr';
import { batchOf, isLostLock } from './jobs.js';
import type { FleetCommands, FleetMulti } from './scripts.js';

/** What `finishJob` needs besides the job. */
export interface FinishContext {
  /** The partition Worker's backend: its options carry the metrics settings. */
  backend: RedisQueueBackend;
  batchKey: (batchId: string) => string;
  /** How long a batch hash lives after its last change. */
  batchTtlMs: number;
  /** Finished jobs each partition keeps (BullMQ's removeOnComplete / removeOnFail counts). */
  keep: { completed: number; failed: number };
}

/** The outcome of {@link finishJob}: finished, or the lock was lost to someone else. */
export type FinishResult = 'finished' | 'lost';

/**
 * Moves an active job to completed with `resultJson`. With `fetchNext`, BullMQ's script
 * also takes the partition's next job (locked with the same token, for the Worker's
 * `opts.lockDuration`) and `next` carries its raw data as the script returned it.
 */
export async function completeJob(
  context: FinishContext,
  job: Job,
  token: string,
  resultJson: string,
  fetchNext = false,
): Promise<{ outcome: FinishResult; next: unknown }> {
  const args = context.backend.moveToCompletedArgs(
    job,
    resultJson,
    { count: context.keep.completed },
    token,
    fetchNext,
  );
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
  const args = context.backend.moveToFailedArgs(
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
  return (await finishJob(context, job, args, 'failed')).outcome;
}

/** Where {@link completeAndTake} takes the next job: another partition of the same queue. */
export interface TakeFrom {
  backend: RedisQueueBackend;
  /** The lock token of the job it takes. */
  token: string;
  lockDurationMs: number;
}

/**
 * Completes a job (without a batch) and, if that went through, takes the next job of
 * another partition in the same script call (scripts.ts FINISH_AND_TAKE). `next` is
 * moveToActive's raw reply, null when the completion was refused.
 */
export async function completeAndTake(
  context: FinishContext,
  job: Job,
  token: string,
  resultJson: string,
  take: TakeFrom,
): Promise<{ outcome: FinishResult; next: unknown }> {
  const { backend } = context;
  const args = backend.moveToCompletedArgs(job, resultJson, { count: context.keep.completed }, token, false);
  const keyCount = backend.moveToFinishedKeys.length;
  // moveToActive's arguments, as BullMQ's RedisQueueBackend.moveToActive builds them (its
  // keys are named in the script from the first, the partition's key prefix).
  const takeArgs = [
    take.backend.keys['']!,
    Date.now(),
    pack({ token: take.token, lockDuration: take.lockDurationMs }),
  ];
  const client = (await backend.client) as unknown as FleetCommands;
  const [code, next] = await client.fleetFinishAndTake(
    ...(args.slice(0, keyCount) as string[]),
    args.length - keyCount,
    ...(args.slice(keyCount) as (string | number | Buffer)[]),
    ...takeArgs,
  );
  const refused = refusal(backend, job, code);
  if (refused !== null) return refused;
  return { outcome: 'finished', next };
}

/** null when moveToFinished finished the job; else 'lost', or throws BullMQ's error. */
function refusal(
  backend: RedisQueueBackend,
  job: Job,
  code: unknown,
): { outcome: 'lost'; next: null } | null {
  if (typeof code !== 'number' || code >= 0) return null;
  const error = backend.finishedErrors({ code, jobId: job.id, command: 'moveToFinished', state: 'active' });
  if (isLostLock(error)) return { outcome: 'lost', next: null };
  throw error;
}

async function finishJob(
  context: FinishContext,
  job: Job,
  args: (string | number | boolean | Buffer)[],
  target: 'completed' | 'failed',
): Promise<{ outcome: FinishResult; next: unknown }> {
  const { backend } = context;
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
    const [error, result] = ((await multi.exec()) ?? [])[0] ?? [new Error('missing MULTI result'), null];
    if (error) throw error;
    code = result;
  }
  return refusal(backend, job, code) ?? { outcome: 'finished', next: code };
}
