/**
 * One fan-out: one job per active tenant for one tick of one schedule. Tenants are
 * streamed from the registry a page at a time (keyset pagination on the slug) and each
 * page is enqueued with one bulk call, so 10,000 tenants never sit in memory at once.
 *
 * Job ids are derived from (schedule, tick, tenant) and the engines treat a second
 * enqueue of the same id as a no-op: two schedulers fanning out the same tick enqueue
 * each tenant's job exactly once.
 */

import type { EnqueueJob, JobOptions } from '../queue/engine.js';
import { TenantInactiveError, UnknownTenantError } from '../reporting/errors.js';
import type { Org } from '../tenancy/org.js';

/** What the scheduler needs of the registry: active orgs in slug order, a page at a time. */
export interface FanOutRegistry {
  list(options: { active?: boolean; after?: string; limit?: number }): Promise<readonly Org[]>;
}

/** What the scheduler needs of a fleet (a `Fleet` fits): the registry and bulk enqueue. */
export interface FanOutTarget {
  readonly registry: FanOutRegistry;
  /** The largest `data` the fleet enqueues, in bytes of JSON; fan-outs are checked against it. */
  readonly maxDataBytes?: number;
  enqueueBulk(queue: string, jobs: EnqueueJob[]): Promise<unknown>;
  enqueue?(queue: string, job: EnqueueJob): Promise<unknown>;
  /** `enqueueBulk` saying how many jobs were new; without it every job counts as new. */
  enqueueCounted?(queue: string, jobs: EnqueueJob[]): Promise<{ added: number }>;
}

/** The job each tenant gets at a tick. */
export interface FanOutJob {
  queue: string;
  name: string;
  /** The same payload for every tenant; the handler reads the tenant from its context. */
  data?: unknown;
  /** Per-job options (attempts, backoff, priority); the id and batch are the scheduler's. */
  jobOptions?: Omit<JobOptions, 'jobId' | 'batchId' | 'delayMs'>;
}

/** What one fan-out did. */
export interface FanOutResult {
  scheduleId: string;
  tick: Date;
  batchId: string;
  /** Jobs handed to the engine (a job already there from another scheduler counts too). */
  enqueued: number;
  /**
   * Of those, the jobs that were new: 0 when another scheduler had already enqueued this
   * tick's jobs (the ids are derived from (schedule, tick, tenant)).
   */
  added: number;
  /** Registry pages read. */
  pages: number;
}

const SEPARATOR = '.';

/** The batch id of a schedule's tick: `fo.<schedule>.<tick epoch ms>`. */
export function fanOutBatchId(scheduleId: string, tick: Date): string {
  return ['fo', scheduleId, tick.getTime()].join(SEPARATOR);
}

/**
 * The job id of one tenant's job at a tick: `fo.<schedule>.<tick epoch ms>.<slug>`. No
 * `:` (BullMQ reserves it); `.` cannot occur in a schedule id or a slug, so ids never collide.
 */
export function fanOutJobId(scheduleId: string, tick: Date, slug: string): string {
  return [fanOutBatchId(scheduleId, tick), slug].join(SEPARATOR);
}

/**
 * Enqueues one job per active tenant for `tick`, `pageSize` tenants per registry read and
 * per bulk enqueue. A tenant deactivated or removed between the read and the enqueue is
 * left out, and so is any tenant in `skip`; any other error stops the fan-out (jobs enqueued so far stay, and a retry of
 * the same tick is idempotent).
 */
export async function fanOutTick(
  target: FanOutTarget,
  scheduleId: string,
  job: FanOutJob,
  tick: Date,
  pageSize: number,
  signal?: AbortSignal,
  skip?: ReadonlySet<string>,
): Promise<FanOutResult> {
  const batchId = fanOutBatchId(scheduleId, tick);
  let after: string | undefined;
  let enqueued = 0;
  let added = 0;
  let pages = 0;
  for (;;) {
    signal?.throwIfAborted();
    const orgs = await target.registry.list({ active: true, limit: pageSize, ...(after ? { after } : {}) });
    if (orgs.length === 0) break;
    pages++;
    const jobs = orgs
      .filter((org) => org.active && !skip?.has(org.slug))
      .map(
        (org): EnqueueJob => ({
          ...job.jobOptions,
          tenant: org.slug,
          name: job.name,
          data: job.data ?? null,
          jobId: fanOutJobId(scheduleId, tick, org.slug),
          batchId,
        }),
      );
    const page = await enqueuePage(target, job.queue, jobs);
    enqueued += page.enqueued;
    added += page.added;
    after = orgs[orgs.length - 1]!.slug;
    if (orgs.length < pageSize) break;
  }
  return { scheduleId, tick, batchId, enqueued, added, pages };
}

// A bulk enqueue checks every tenant first; when one was deactivated after the page was
// read, the page goes one job at a time so the other tenants still get theirs.
async function enqueuePage(
  target: FanOutTarget,
  queue: string,
  jobs: EnqueueJob[],
): Promise<{ enqueued: number; added: number }> {
  if (jobs.length === 0) return { enqueued: 0, added: 0 };
  const bulk = async (page: EnqueueJob[]) => {
    if (target.enqueueCounted) return (await target.enqueueCounted(queue, page)).added;
    if (page.length === 1 && target.enqueue) await target.enqueue(queue, page[0]!);
    else await target.enqueueBulk(queue, page);
    return page.length;
  };
  try {
    return { enqueued: jobs.length, added: await bulk(jobs) };
  } catch (err) {
    if (!isTenantGone(err)) throw err;
  }
  const outcome = { enqueued: 0, added: 0 };
  for (const job of jobs) {
    try {
      outcome.added += await bulk([job]);
      outcome.enqueued++;
    } catch (err) {
      if (!isTenantGone(err)) throw err;
    }
  }
  return outcome;
}

function isTenantGone(err: unknown): boolean {
  return err instanceof TenantInactiveError || err instanceof UnknownTenantError;
}
