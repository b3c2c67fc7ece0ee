import type { ActiveJob, QueueEngine } from '../queue/engine.js';
import type { TenantConnection } from '../tenancy/tenant-pools/tenant-connection.js';
import type { RunningJob } from './worker-types.js';

/**
 * The key of a running job in a worker's maps. A caller-chosen `jobId` is unique only
 * within its (queue, tenant) partition, so two tenants may both run `tick-1` at once:
 * the id alone does not name a job.
 */
export function jobKey(job: Pick<ActiveJob, 'queue' | 'tenant' | 'id'>): string {
  return `${job.queue}\u0000${job.tenant}\u0000${job.id}`;
}

/** The job's abort signal, its controller made on first use. */
export function signalOf(entry: RunningJob): AbortSignal {
  entry.controller ??= new AbortController();
  return entry.controller.signal;
}

/** Why a worker gave up on a running job. */
export type AbandonReason = 'shutdown' | 'lock-lost';

/** What {@link RunningJobs} needs besides the engine. */
export interface RunningJobsOptions {
  engine: QueueEngine;
  lockDurationMs: number;
  /** Called once per job given up on, after its handler was aborted and its connection released. */
  onAbandoned: (entry: RunningJob, reason: AbandonReason) => void;
  onError: (error: unknown) => void;
}

/**
 * The jobs a worker is running, and their locks. Jobs fetched by hand get no automatic
 * renewal from the engine, so every `lockDurationMs / 2` all of them are extended, and
 * one whose lock was lost (it stalled and another worker may have it now) is abandoned.
 *
 * `extendLocks` answers with bare ids, which are ambiguous across partitions, so the
 * renewal makes one call per (queue, tenant) partition, all at once. The BullMQ engine
 * makes one script call per partition either way, so this costs no extra round trip.
 */
export class RunningJobs {
  readonly #entries = new Map<string, RunningJob>();
  readonly #o: RunningJobsOptions;
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> | undefined;

  constructor(options: RunningJobsOptions) {
    this.#o = options;
  }

  get size(): number {
    return this.#entries.size;
  }

  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.renew(), Math.max(10, Math.floor(this.#o.lockDurationMs / 2)));
    this.#timer.unref();
  }

  /** Starts a job: its lock is renewed until it settles or is abandoned. */
  add(job: ActiveJob, db: TenantConnection | undefined): RunningJob {
    const entry: RunningJob = {
      key: jobKey(job),
      job,
      controller: undefined,
      db,
      abandoned: false,
    };
    this.#entries.set(entry.key, entry);
    return entry;
  }

  /** The job's handler ended and the job is the worker's to settle: no more renewals. */
  settle(entry: RunningJob): void {
    this.#entries.delete(entry.key);
    entry.db = undefined;
  }

  /**
   * Gives up on a running job, once: aborts its handler and releases its connection; its
   * lock is left to expire.
   */
  abandon(entry: RunningJob, reason: AbandonReason): void {
    if (entry.abandoned) return;
    entry.abandoned = true;
    this.#entries.delete(entry.key);
    entry.controller ??= new AbortController();
    entry.controller.abort(new Error(`Job ${entry.job.id} aborted: ${reason}`));
    // The handler may still hold the connection: destroy it rather than lend it on.
    entry.db?.release(new Error(`job aborted (${reason})`));
    entry.db = undefined;
    this.#o.onAbandoned(entry, reason);
  }

  /** Gives up on every running job. */
  abandonAll(reason: AbandonReason): void {
    for (const entry of [...this.#entries.values()]) this.abandon(entry, reason);
  }

  /** Renews every held lock now; a renewal still in flight is not doubled. */
  renew(): Promise<void> {
    if (this.#inFlight !== undefined || this.#entries.size === 0) return this.#inFlight ?? Promise.resolve();
    const partitions = new Map<string, RunningJob[]>();
    for (const entry of this.#entries.values()) {
      const key = `${entry.job.queue}\u0000${entry.job.tenant}`;
      const group = partitions.get(key);
      if (group === undefined) partitions.set(key, [entry]);
      else group.push(entry);
    }
    this.#inFlight = Promise.all(
      [...partitions.values()].map(async (group) => {
        const lost = new Set(
          await this.#o.engine.extendLocks(
            group.map((entry) => entry.job),
            this.#o.lockDurationMs,
          ),
        );
        // Only jobs still held: one settled while the call was out is no longer ours to report.
        for (const entry of group)
          if (lost.has(entry.job.id) && this.#entries.get(entry.key) === entry)
            this.abandon(entry, 'lock-lost');
      }),
    )
      .then(
        () => {},
        (error: unknown) => this.#o.onError(error),
      )
      .finally(() => {
        this.#inFlight = undefined;
      });
    return this.#inFlight;
  }

  /** Stops renewing; resolves once a renewal in flight has ended. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#inFlight;
  }
}
