/**
 * Validation and normalisation of what callers hand to a queue engine, shared by every
 * engine so that the same input is accepted or rejected the same way everywhere.
 */
import { describe, ValidationError } from '../reporting/errors.js';
import type { BackoffOptions, EnqueueJob } from './engine.js';

/**
 * The largest priority number a job may carry. BullMQ scores a prioritised job
 * `priority · 2³² + counter` in a sorted set of doubles, exact only below 2⁵³, so 2²¹ − 1
 * is the largest usable priority; that one was given, before 2026-12-01, to jobs enqueued
 * without a priority (they now wait in BullMQ's `wait` list).
 */
export const MAX_PRIORITY = 2_097_150;

/** Queue names end up in Redis keys and BullMQ queue names (`<queue>.<tenant>`). */
const QUEUE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
/** Tenants are slugs; this is a superset of the slug rule that keeps keys unambiguous. */
const TENANT_KEY = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
/** The longest job id: BullMQ's limit, kept on every engine so ids move between them. */
export const MAX_JOB_ID_LENGTH = 128;
/** No `:` (BullMQ key separator) and not all digits (BullMQ's own numeric ids). */
const JOB_ID = new RegExp(`^(?!\\d+$)[^:\\s]{1,${MAX_JOB_ID_LENGTH}}$`);

/** A job ready to be stored: options resolved, data serialised once. */
export interface NormalisedJob {
  tenant: string;
  name: string;
  /** The data as JSON text (what every engine stores). */
  json: string;
  jobId: string | null;
  delayMs: number;
  priority: number | null;
  attempts: number;
  backoff: BackoffOptions;
  batchId: string | null;
}

/**
 * Checks the queue name and every job of a bulk before anything is written, so that one
 * bad job leaves none of the bulk enqueued; returns the jobs normalised, in order.
 */
export function normaliseJobs(
  queue: unknown,
  jobs: readonly EnqueueJob<unknown>[],
  maxDataBytes: number,
): NormalisedJob[] {
  checkQueueName(queue);
  if (!Array.isArray(jobs))
    throw new ValidationError('jobs', `Expected an array of jobs, got ${describe(jobs)}`);
  return jobs.map((job) => normaliseJob(job, maxDataBytes));
}

/** A handler's result as the JSON text engines store (`undefined` as `null`). */
export function serialiseResult(result: unknown): string {
  try {
    return JSON.stringify(result) ?? 'null';
  } catch (error) {
    throw new ValidationError('result', `Expected a JSON-serialisable result, got ${describe(result)}`, {
      cause: error,
    });
  }
}

/** Throws unless `queue` can name a logical queue. */
export function checkQueueName(queue: unknown): string {
  if (typeof queue !== 'string' || !QUEUE_NAME.test(queue))
    throw new ValidationError(
      'queue',
      `Expected \`queue\` to match ${QUEUE_NAME} (letters, digits, _ and -), got ${describe(queue)}`,
    );
  return queue;
}

/** Throws unless `tenant` can name a partition. */
export function checkTenant(tenant: unknown): string {
  if (typeof tenant !== 'string' || !TENANT_KEY.test(tenant))
    throw new ValidationError('tenant', `Expected \`tenant\` to be a tenant slug, got ${describe(tenant)}`);
  return tenant;
}

function checkInteger(field: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)
    throw new ValidationError(
      field,
      `Expected \`${field}\` to be an integer from ${min} to ${max}, got ${describe(value)}`,
    );
  return value;
}

/** Serialises `data` to JSON, or throws a `ValidationError` saying why it cannot be stored. */
export function serialiseData(data: unknown, maxDataBytes: number): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(data);
  } catch (error) {
    throw new ValidationError('data', `Expected JSON-serialisable \`data\`, got ${describe(data)}`, {
      cause: error,
    });
  }
  if (json === undefined)
    throw new ValidationError('data', `Expected JSON-serialisable \`data\`, got ${describe(data)}`);
  const bytes = Buffer.byteLength(json);
  if (bytes > maxDataBytes)
    throw new ValidationError(
      'data',
      `Expected \`data\` of at most ${maxDataBytes} bytes as JSON, got ${bytes} bytes`,
    );
  return json;
}

/** Checks one job and resolves its options; throws `ValidationError` on bad input. */
export function normaliseJob(job: EnqueueJob<unknown>, maxDataBytes: number): NormalisedJob {
  if (typeof job !== 'object' || job === null)
    throw new ValidationError('job', `Expected a job object, got ${describe(job)}`);
  const tenant = checkTenant(job.tenant);
  if (typeof job.name !== 'string' || job.name.length === 0 || job.name.length > 128)
    throw new ValidationError(
      'name',
      `Expected \`name\` to be 1 to 128 characters, got ${describe(job.name)}`,
    );
  const json = serialiseData(job.data, maxDataBytes);
  if (job.jobId !== undefined && (typeof job.jobId !== 'string' || !JOB_ID.test(job.jobId)))
    throw new ValidationError(
      'jobId',
      `Expected \`jobId\` to be 1 to 128 characters without ':' or spaces and not all digits, got ${describe(job.jobId)}`,
    );
  const attempts = job.attempts === undefined ? 1 : checkInteger('attempts', job.attempts, 1, 1_000);
  const delayMs = job.delayMs === undefined ? 0 : checkInteger('delayMs', job.delayMs, 0);
  const priority =
    job.priority === undefined ? null : checkInteger('priority', job.priority, 1, MAX_PRIORITY);
  if (job.batchId !== undefined && (typeof job.batchId !== 'string' || !/^[^\s]{1,200}$/.test(job.batchId)))
    throw new ValidationError(
      'batchId',
      `Expected \`batchId\` to be 1 to 200 characters, got ${describe(job.batchId)}`,
    );
  let backoff: BackoffOptions = { type: 'exponential', delayMs: 1000 };
  if (job.backoff !== undefined) {
    const type = job.backoff?.type ?? 'exponential';
    if (type !== 'exponential' && type !== 'fixed')
      throw new ValidationError('backoff.type', `Expected 'exponential' or 'fixed', got ${describe(type)}`);
    backoff = { type, delayMs: checkInteger('backoff.delayMs', job.backoff?.delayMs, 0) };
  }
  return {
    tenant,
    name: job.name,
    json,
    jobId: job.jobId ?? null,
    delayMs,
    priority,
    attempts,
    backoff,
    batchId: job.batchId ?? null,
  };
}

/** The wait before the next attempt, after `attemptsMade` failed attempts (≥ 1). */
export function backoffDelay(backoff: BackoffOptions, attemptsMade: number): number {
  if (backoff.type === 'fixed') return backoff.delayMs;
  return Math.round(2 ** (attemptsMade - 1) * backoff.delayMs);
}

/** Throws unless `id` can name a job (auto-generated ids included). */
export function checkJobId(id: unknown): string {
  if (typeof id !== 'string' || !/^[^:\s]{1,128}$/.test(id))
    throw new ValidationError(
      'id',
      `Expected a job id of 1 to 128 characters without ':' or spaces, got ${describe(id)}`,
    );
  return id;
}

/** Throws unless `lockDurationMs` is a usable lock duration. */
export function checkLockDuration(lockDurationMs: unknown): number {
  return checkInteger('lockDurationMs', lockDurationMs, 1, 24 * 3_600_000);
}

/** Throws unless `max` is a tenant concurrency cap (or null to lift it). */
export function checkConcurrency(max: unknown): number | null {
  return max === null ? null : checkInteger('max', max, 1, 1_000_000);
}

/**
 * Throws unless `caps` is a map (a `Map`, or anything with `entries()` as a `ReadonlyMap`
 * has) of tenant slug to cap, null lifting it; its checked entries.
 */
export function checkCaps(caps: unknown): Array<[string, number | null]> {
  const entries = (caps as { entries?: unknown } | null)?.entries;
  if (typeof entries !== 'function')
    throw new ValidationError(
      'caps',
      `Expected \`caps\` to be a Map of tenant slug to cap, got ${describe(caps)}`,
    );
  return Array.from(
    entries.call(caps) as Iterable<[unknown, unknown]>,
    ([tenant, max]): [string, number | null] => [checkTenant(tenant), checkConcurrency(max)],
  );
}
