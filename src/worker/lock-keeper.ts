import type { ActiveJob, TenantQueueBackend } from '../queue/backend.js';

/**
 * Renews the locks of the jobs a worker is running. Jobs fetched by hand get no
 * automatic renewal from the engine, so every `lockDurationMs / 2` the keeper extends
 * all of them in one batched call, and reports the ones whose lock was lost (the job
 * stalled and another worker may have it now).
 */
export class LockKeeper {
  readonly #jobs = new Map<string, ActiveJob>();
  readonly #backend: TenantQueueBackend;
  readonly #lockDurationMs: number;
  readonly #onLost: (jobIds: string[]) => void;
  readonly #onError: (error: unknown) => void;
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> | undefined;

  constructor(
    backend: TenantQueueBackend,
    lockDurationMs: number,
    onLost: (jobIds: string[]) => void,
    onError: (error: unknown) => void,
  ) {
    this.#backend = backend;
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
    this.#jobs.set(job.id, job);
  }

  delete(job: ActiveJob): void {
    this.#jobs.delete(job.id);
  }

  /** Renews every held lock now; a renewal still in flight is not doubled. */
  renew(): Promise<void> {
    if (this.#inFlight !== undefined || this.#jobs.size === 0) return this.#inFlight ?? Promise.resolve();
    const jobs = [...this.#jobs.values()];
    this.#inFlight = this.#backend
      .extendLocks(jobs, this.#lockDurationMs)
      .then(
        (lost) => {
          const stillHeld = lost.filter((id) => this.#jobs.has(id));
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
