import type { Logger } from 'pino';
import type { ActiveJob } from '../queue/engine.js';
import { describe } from '../reporting/errors.js';
import type { Org } from '../tenancy/org.js';
import type { TenantConnection } from '../tenancy/tenant-pools/tenant-connection.js';

/** What a handler gets besides its job. */
export interface JobContext {
  /** The tenant the job belongs to, as the registry knows it. */
  readonly tenant: Org;
  /**
   * A connection to the tenant's data (its schema or its database), borrowed for this
   * job and given back when the handler settles; undefined when the worker runs with
   * `borrowConnection: false`. Do not keep it beyond the handler.
   */
  readonly db: TenantConnection | undefined;
  /**
   * Aborted when the worker shuts down past its deadline or loses the job's lock: stop
   * soon, the job will run again.
   */
  readonly signal: AbortSignal;
  /** A logger bound to the queue, tenant, job id and attempt. */
  readonly log: Logger;
  /** 1 on the first run, 2 on the first retry… */
  readonly attempt: number;
}

/** A job handler: its resolved value is the job's result, a throw fails the attempt. */
export type JobHandler<Data = unknown, Result = unknown> = (
  job: ActiveJob<Data>,
  ctx: JobContext,
) => Promise<Result> | Result;

/**
 * Builds a context. The logger child and the abort signal are made on first use only:
 * most handlers never log or read the signal, and either per job is measurable at
 * 10,000 jobs a second.
 */
export function createJobContext(
  job: ActiveJob,
  tenant: Org,
  db: TenantConnection | undefined,
  signal: () => AbortSignal,
  logger: Logger,
): JobContext {
  let log: Logger | undefined;
  return {
    tenant,
    db,
    get signal() {
      return signal();
    },
    attempt: job.attempt,
    get log() {
      // The worker's logger already names the queue (and the worker).
      log ??= logger.child({ tenant: job.tenant, jobId: job.id, attempt: job.attempt });
      return log;
    },
  };
}

/** A handler may throw anything; the engines keep an `Error`'s message and stack. */
export function toError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  return new Error(`Expected the handler to throw an Error, got ${describe(thrown)}`, { cause: thrown });
}
