/**
 * What `scheduler.fanOut()` takes, and its validation. Everything a tick will later hand
 * the engine is checked here, once, with the queue layer's own validators: a schedule the
 * engine would refuse fails at registration with the field it got wrong, never at every
 * tick after it.
 */
import { Cron } from 'croner';
import { checkQueueName, MAX_JOB_ID_LENGTH, normaliseJob } from '../queue/job-input.js';
import { describe, ValidationError } from '../reporting/errors.js';
import { MAX_SLUG_LENGTH } from '../tenancy/org.js';
import { type FanOutJob, fanOutBatchId, fanOutJobId } from './fan-out.js';

/** What happens to ticks missed while no scheduler ran. */
export type CatchUpPolicy = 'latest' | 'none';

/** One schedule: what to fan out, and when. */
export interface FanOutOptions extends FanOutJob {
  /**
   * Stable name of the schedule: job and batch ids derive from it. Letters, digits, `-`,
   * `_`, at most {@link MAX_SCHEDULE_ID_LENGTH} characters.
   */
  id: string;
  /** A croner pattern: `0 3 * * *`, or 6 fields with seconds first (`*\/10 * * * * *`). */
  cron: string;
  /** IANA time zone the pattern is read in. @default the process's time zone */
  timezone?: string;
  /** @default 'latest' */
  catchUp?: CatchUpPolicy;
}

/** {@link FanOutOptions} as validated: the catch-up policy filled in. */
export type ResolvedFanOutOptions = FanOutOptions & { catchUp: CatchUpPolicy };

// The longest job id a fan-out makes: the longest slug, at a tick with a 13-digit epoch
// millisecond count (every instant up to the year 2286).
const LONGEST_SLUG = 'x'.repeat(MAX_SLUG_LENGTH);
const LATEST_TICK = new Date(9_999_999_999_999);

/**
 * The longest schedule id: what is left of the engines' job id limit once the longest
 * slug and the tick are in (`fo.<id>.<tick ms>.<slug>`): 47 characters.
 */
export const MAX_SCHEDULE_ID_LENGTH = MAX_JOB_ID_LENGTH - fanOutJobId('', LATEST_TICK, LONGEST_SLUG).length;
const SCHEDULE_ID = new RegExp(`^[A-Za-z0-9][A-Za-z0-9_-]{0,${MAX_SCHEDULE_ID_LENGTH - 1}}$`);

// The per-job options a schedule may set; id, batch and delay are the scheduler's.
const JOB_OPTION_KEYS = new Set(['attempts', 'backoff', 'priority']);
// Fields normaliseJob reports that come from `jobOptions` rather than the schedule.
const NOT_JOB_OPTIONS = new Set(['name', 'data', 'job']);

/**
 * Checks a schedule and everything its ticks will enqueue (queue, name, data as JSON
 * within `maxDataBytes`, job options, the longest job id its ids can reach); throws
 * {@link ValidationError} naming the field.
 */
export function validateFanOut(options: FanOutOptions, maxDataBytes: number): ResolvedFanOutOptions {
  if (typeof options !== 'object' || options === null) {
    throw new ValidationError('fanOut', `Expected fan-out options, got ${describe(options)}`);
  }
  if (typeof options.id !== 'string' || !SCHEDULE_ID.test(options.id)) {
    throw new ValidationError(
      'id',
      `Expected \`id\` to be 1–${MAX_SCHEDULE_ID_LENGTH} letters, digits, '-' or '_' (job ids \`fo.<id>.<tick ms>.<slug>\` must fit ${MAX_JOB_ID_LENGTH} characters with a ${MAX_SLUG_LENGTH}-character slug), got ${describe(options.id)}`,
    );
  }
  checkQueueName(options.queue);
  const jobOptions: unknown = options.jobOptions ?? {};
  if (typeof jobOptions !== 'object' || jobOptions === null || Array.isArray(jobOptions)) {
    throw new ValidationError(
      'jobOptions',
      `Expected \`jobOptions\` to be an object, got ${describe(options.jobOptions)}`,
    );
  }
  const unknown = Object.keys(jobOptions).filter((key) => !JOB_OPTION_KEYS.has(key));
  if (unknown.length > 0) {
    throw new ValidationError(
      'jobOptions',
      `Expected \`jobOptions\` of ${[...JOB_OPTION_KEYS].join(', ')} only (ids, batch and delay are the scheduler's), got ${unknown.map((key) => JSON.stringify(key)).join(', ')}`,
    );
  }
  // The job the longest slug would get at the latest tick: if the engine takes it, it
  // takes every job of every tick.
  try {
    normaliseJob(
      {
        ...jobOptions,
        tenant: LONGEST_SLUG,
        name: options.name,
        data: options.data ?? null,
        jobId: fanOutJobId(options.id, LATEST_TICK, LONGEST_SLUG),
        batchId: fanOutBatchId(options.id, LATEST_TICK),
      },
      maxDataBytes,
    );
  } catch (err) {
    if (err instanceof ValidationError && !NOT_JOB_OPTIONS.has(err.field)) {
      throw new ValidationError(`jobOptions.${err.field}`, err.message, { cause: err });
    }
    throw err;
  }
  const catchUp = options.catchUp ?? 'latest';
  if (catchUp !== 'latest' && catchUp !== 'none') {
    throw new ValidationError(
      'catchUp',
      `Expected \`catchUp\` to be 'latest' or 'none', got ${describe(catchUp)}`,
    );
  }
  return { ...options, catchUp };
}

/**
 * Whether `value` has the shape of a cron pattern the scheduler takes: 5 fields, or 6
 * with seconds first, or a nickname such as `@daily`. (croner also reads a 7th field, the
 * year, which the scheduler does not promise.)
 */
export function isCronPattern(value: string): boolean {
  if (/^@[a-z]+$/.test(value.trim())) return true;
  const fields = value.trim().split(/\s+/).filter(Boolean).length;
  return fields === 5 || fields === 6;
}

/** The paused croner job of a schedule; {@link ValidationError} for a bad pattern or zone. */
export function makeCron(options: FanOutOptions): Cron {
  if (typeof options.cron !== 'string') {
    throw new ValidationError(
      'cron',
      `Expected \`cron\` to be a cron pattern, got ${describe(options.cron)}`,
    );
  }
  if (!isCronPattern(options.cron)) {
    throw new ValidationError(
      'cron',
      `Expected \`cron\` to be a cron pattern of 5 fields, or 6 with seconds first, got ${describe(options.cron)}`,
    );
  }
  if (options.timezone !== undefined && typeof options.timezone !== 'string') {
    throw new ValidationError(
      'timezone',
      `Expected \`timezone\` to be an IANA time zone, got ${describe(options.timezone)}`,
    );
  }
  let cron: Cron;
  try {
    cron = new Cron(options.cron, {
      paused: true,
      ...(options.timezone ? { timezone: options.timezone } : {}),
    });
    // A bad time zone only shows when a run is computed.
    cron.nextRun();
  } catch (err) {
    const field = options.timezone && !/pattern/i.test((err as Error).message) ? 'timezone' : 'cron';
    const got = field === 'cron' ? options.cron : options.timezone;
    throw new ValidationError(
      field,
      `Expected \`${field}\` to be ${field === 'cron' ? 'a cron pattern of 5 or 6 fields' : 'an IANA time zone'}, got ${describe(got)} (${(err as Error).message})`,
    );
  }
  return cron;
}
