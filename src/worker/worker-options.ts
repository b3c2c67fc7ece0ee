import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { ConfigError, describe } from '../reporting/errors.js';
import { durationOption, integerOption } from '../validate.js';

/** Options of a {@link FleetWorker}. */
export interface FleetWorkerOptions {
  /**
   * Jobs this worker runs at once, over all tenants.
   * @default 32
   */
  concurrency?: number;
  /**
   * Jobs of one tenant this worker runs at once. The org's `maxConcurrency`, when set,
   * lowers it and also caps the tenant across the whole fleet.
   * @default 4
   */
  perTenantConcurrency?: number;
  /**
   * Jobs a slot runs back to back for the tenant it picked before the tenant's turn
   * passes on. Each of them after the first is fetched in the same engine call that
   * completes the one before (one Redis script instead of two on BullMQ). Each job
   * gives its connection back and the next borrows again through the pool's checkout,
   * so a transaction left open or a `search_path` changed never reaches the next job
   * (the pool usually lends the same connection back). A tenant's weight is the number of turns it gets per
   * round, so two busy tenants of weights 3 and 1 still get 3:1 of the jobs; 1 gives
   * the finest interleaving of tenants, larger values fewer engine calls per job.
   * A tenant with an org `maxConcurrency` gets turns of one job (and as many more turns),
   * so its places go round the fleet; a turn also ends early while another tenant waits
   * for a connection, or when none can be lent for its next job without waiting.
   * @default 4
   */
  jobsPerTurn?: number;
  /**
   * Borrow a connection to the tenant's database (`ctx.db`) for each job. Needs the
   * fleet's `pools`. A tenant whose pool cannot lend right now is skipped, not waited on.
   * @default true
   */
  borrowConnection?: boolean;
  /**
   * How long a fetched job stays locked to this worker without renewal; the lock is
   * renewed every `lockDurationMs / 2` while the handler runs. A worker that dies loses
   * its lock after this long and the job runs again elsewhere.
   * @default 30_000
   */
  lockDurationMs?: number;
  /**
   * How often the worker puts back jobs whose lock expired (their worker died).
   * @default lockDurationMs
   */
  stalledIntervalMs?: number;
  /**
   * How long `close()` lets running jobs finish before it aborts them through
   * `ctx.signal` and leaves them to be retried.
   * @default 30_000
   */
  shutdownTimeoutMs?: number;
  /**
   * The longest the worker waits for a sign of new jobs before it asks the engine
   * again which tenants are ready (also how soon a tenant at its fleet-wide cap is
   * retried).
   * @default 1_000
   */
  pollIntervalMs?: number;
  /**
   * How long a tenant whose pool could not lend is skipped before it is tried again
   * (any connection this worker gives back retries it sooner).
   * @default 25
   */
  poolRetryMs?: number;
  /**
   * How often the orgs of known tenants are read again, so that a new weight, cap or
   * deactivation takes effect.
   * @default 5_000
   */
  orgRefreshMs?: number;
  /**
   * This worker's identity in locks and logs.
   * @default `<hostname>:<pid>:<random>`
   */
  workerId?: string;
  /**
   * Start pulling jobs at once; with false, call `run()`.
   * @default true
   */
  autorun?: boolean;
}

/** {@link FleetWorkerOptions} with every default applied. */
export interface ResolvedFleetWorkerOptions {
  concurrency: number;
  perTenantConcurrency: number;
  jobsPerTurn: number;
  borrowConnection: boolean;
  lockDurationMs: number;
  stalledIntervalMs: number;
  shutdownTimeoutMs: number;
  pollIntervalMs: number;
  poolRetryMs: number;
  orgRefreshMs: number;
  workerId: string;
  autorun: boolean;
}

const DEFAULTS = {
  concurrency: 32,
  perTenantConcurrency: 4,
  jobsPerTurn: 4,
  borrowConnection: true,
  lockDurationMs: 30_000,
  shutdownTimeoutMs: 30_000,
  pollIntervalMs: 1_000,
  poolRetryMs: 25,
  orgRefreshMs: 5_000,
  autorun: true,
} satisfies Omit<ResolvedFleetWorkerOptions, 'workerId' | 'stalledIntervalMs'>;

// Upper bounds of the sizes. Each slot is an async loop with a running job, so a
// process past 10,000 of them is out of memory or event-loop time long before it is out
// of work (1e6 slots took 667 MB of heap before the first job); a turn of more than 1,000
// jobs would keep one tenant on a slot for so long that fairness is gone.
/** The most slots (`concurrency`, `perTenantConcurrency`) a worker takes. */
export const MAX_CONCURRENCY = 10_000;
/** The longest turn (`jobsPerTurn`) a worker takes. */
export const MAX_JOBS_PER_TURN = 1_000;

const SIZE_OPTIONS = [
  ['concurrency', 1, MAX_CONCURRENCY],
  ['perTenantConcurrency', 1, MAX_CONCURRENCY],
  ['jobsPerTurn', 1, MAX_JOBS_PER_TURN],
] as const;

// Durations with their minimum; the maximum is what a timer can hold (see validate.ts).
const DURATION_OPTIONS = [
  ['lockDurationMs', 100],
  ['stalledIntervalMs', 10],
  ['shutdownTimeoutMs', 0],
  ['pollIntervalMs', 1],
  ['poolRetryMs', 1],
  ['orgRefreshMs', 10],
] as const;

/** Applies the defaults and checks every option; {@link ConfigError} names the first bad one. */
export function resolveFleetWorkerOptions(options: FleetWorkerOptions = {}): ResolvedFleetWorkerOptions {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('options', `Expected worker options to be an object, got ${describe(options)}`);
  }
  for (const [name, min, max] of SIZE_OPTIONS) {
    if (options[name] !== undefined) integerOption(name, options[name], min, max);
  }
  for (const [name, min] of DURATION_OPTIONS) {
    if (options[name] !== undefined) durationOption(name, options[name], min);
  }
  for (const name of ['borrowConnection', 'autorun'] as const) {
    const value = options[name];
    if (value !== undefined && typeof value !== 'boolean') {
      throw new ConfigError(name, `Expected \`${name}\` to be a boolean, got ${describe(value)}`);
    }
  }
  if (options.workerId !== undefined && (typeof options.workerId !== 'string' || options.workerId === '')) {
    throw new ConfigError(
      'workerId',
      `Expected \`workerId\` to be a non-empty string, got ${describe(options.workerId)}`,
    );
  }
  const lockDurationMs = options.lockDurationMs ?? DEFAULTS.lockDurationMs;
  return {
    concurrency: options.concurrency ?? DEFAULTS.concurrency,
    perTenantConcurrency: options.perTenantConcurrency ?? DEFAULTS.perTenantConcurrency,
    jobsPerTurn: options.jobsPerTurn ?? DEFAULTS.jobsPerTurn,
    borrowConnection: options.borrowConnection ?? DEFAULTS.borrowConnection,
    lockDurationMs,
    stalledIntervalMs: options.stalledIntervalMs ?? lockDurationMs,
    shutdownTimeoutMs: options.shutdownTimeoutMs ?? DEFAULTS.shutdownTimeoutMs,
    pollIntervalMs: options.pollIntervalMs ?? DEFAULTS.pollIntervalMs,
    poolRetryMs: options.poolRetryMs ?? DEFAULTS.poolRetryMs,
    orgRefreshMs: options.orgRefreshMs ?? DEFAULTS.orgRefreshMs,
    workerId: options.workerId ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`,
    autorun: options.autorun ?? DEFAULTS.autorun,
  };
}
