/**
 * What a worker logs about jobs and about itself.
 *
 * Every failed job is a line: at info when it will be retried, at warn when it is failed
 * for good, with the tenant, job id, attempt of attempts and the error's message; its
 * stack only when the logger is at debug (the failure is the job's, and the engine keeps
 * the stack on the job).
 *
 * A worker's own errors are logged so that one that repeats does not flood the log: the first of a
 * kind is logged whole (with its stack and cause), then the same kind at most once per
 * `everyMs`, with how many were left out meanwhile. A kind is where it happened plus the
 * error's code or message, so a tenant whose secret is missing is one line a minute, and
 * a new, different failure is still logged at once.
 */

import type { ActiveJob, FailOutcome } from '../queue/engine.js';
import type { Logger } from '../reporting/logger.js';

/** How long the same kind of error stays quiet after it was logged. @default 60_000 */
const QUIET_MS = 60_000;
/** Kinds remembered at most (the oldest is forgotten first), so the map stays small. */
const MAX_KINDS = 1_000;

interface Seen {
  loggedAt: number;
  suppressed: number;
}

export class ErrorLog {
  readonly #logger: Logger;
  readonly #everyMs: number;
  readonly #now: () => number;
  readonly #seen = new Map<string, Seen>();

  constructor(logger: Logger, everyMs = QUIET_MS, now: () => number = Date.now) {
    this.#logger = logger;
    this.#everyMs = everyMs;
    this.#now = now;
  }

  /** Logs `error` raised during `during`, unless the same kind was logged within the quiet time. */
  report(error: Error, during: string): void {
    const code = (error as { code?: unknown }).code;
    const kind = `${during}\u0000${typeof code === 'string' ? code : error.message}`;
    const now = this.#now();
    const seen = this.#seen.get(kind);
    if (seen !== undefined && now - seen.loggedAt < this.#everyMs) {
      seen.suppressed += 1;
      return;
    }
    if (seen === undefined) {
      this.#logger.error({ err: error, during }, 'worker error');
    } else {
      this.#logger.error(
        { err: error, during, repeated: seen.suppressed + 1, sinceMs: now - seen.loggedAt },
        'worker error, still failing',
      );
    }
    this.#seen.delete(kind);
    this.#seen.set(kind, { loggedAt: now, suppressed: 0 });
    if (this.#seen.size > MAX_KINDS) this.#seen.delete(this.#seen.keys().next().value as string);
  }
}

/** Logs one failed job: info while it will be retried, warn once it is failed for good. */
export function logFailure(logger: Logger, job: ActiveJob, error: Error, outcome: FailOutcome): void {
  const fields = {
    tenant: job.tenant,
    jobId: job.id,
    // Not `name`: pino's own `name` field (the logger's, "tenant-fleet") would be twice on the line.
    jobName: job.name,
    attempt: `${job.attempt} of ${job.maxAttempts}`,
    error: error.message,
    ...(logger.isLevelEnabled('debug') && { stack: error.stack }),
  };
  if (outcome === 'retrying') logger.info(fields, 'job failed, will retry');
  else logger.warn(fields, 'job failed');
}
