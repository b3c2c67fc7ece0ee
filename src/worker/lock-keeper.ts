import type { ActiveJob, QueueEngine } from '../queue/engine.js';

/**
 * The key of a running job in a worker's maps. A caller-chosen `jobId` is unique only
 * within its (queue, tenant) partition, so two tenants may both run `tick-1` at once:
 * the id alone does not name a job.
 */
export function jobKey(job: Pick<ActiveJob, 'queue' | 'tenant' | 'id'>): string {
  return `${job.queue}\u0000${job.tenant}\u0000${job.id}`;
}

/**
 * Renews the locks of the jobs a worker is running. Jobs fetched by hand get no
 * automatic renewal from the engine, so every `lockDurationMs / 2` the keeper extends
 * all of them, and reports the ones whose lock was lost (the job stalled and another
 * worker may have it now).
 *
 * `extendLocks` answers with bare ids, which are ambiguous across partitions, so the
 * keeper makes one call per (queue, tenant) partition, all at once. The BullMQ engine
 * makes one script call per partition either way, so this costs no extra round trip.
 */
export class LockKeeper {
  readonly #jobs = new Map<string, ActiveJob>();
  readonly #engine: QueueEngine;
  readonly #lockDurationMs: number;
  readonly #onLost: (jobs: ActiveJob[]) => void;
  readonly #onError: (error: unknown) => void;
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> | undefined;

  constructor(
    engine: QueueEngine,
    lockDurationMs: number,
    onLost: (jobs: ActiveJob[]) => void,
    onError: (error: unknown) => void,
  ) {
    this.#engine = engine;
    this.#lockDurationMs = lockDurationMs;
    this.#onLost = onLost;
    this.#onError = onError;
  }

  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.renew(), Math.max(10, Math.floor(this.#lockDurationMs / 2)));
    this.#timer.unref();
  }

  add(job: ActiveJob): void {
    this.#jobs.set(jobKey(job), job);
  }

  delete(job: ActiveJob): void {
    this.#jobs.delete(jobKey(job));
  }

  /** Renews every held lock now; a renewal still in flight is not doubled. */
  renew(): Promise<void> {
    if (this.#inFlight !== undefined || this.#jobs.size === 0) return this.#inFlight ?? Promise.resolve();
    const partitions = new Map<string, ActiveJob[]>();
    for (const job of this.#jobs.values()) {
      const key = `${job.queue}\u0000${job.tenant}`;
      const group = partitions.get(key);
      if (group === undefined) partitions.set(key, [job]);
      else group.push(job);
    }
    this.#inFlight = Promise.all(
      [...partitions.values()].map(async (group) => {
        const lost = new Set(await this.#engine.extendLocks(group, this.#lockDurationMs));
        // Only jobs still held: one settled while the call was out is no longer ours to report.
        return group.filter((job) => lost.has(job.id) && this.#jobs.get(jobKey(job)) === job);
      }),
    )
      .then(
        (lost) => {
          const stillHeld = lost.flat();
          if (stillHeld.length > 0) this.#onLost(stillHeld);
        },
        (error: unknown) => this.#onError(error),
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
