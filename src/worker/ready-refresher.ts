import { setTimeout as sleep } from 'node:timers/promises';
import type { QueueEngine } from '../queue/engine.js';
import type { TenantDirectory } from './tenant-directory.js';

// How long the loop rests after the engine failed, so a Redis outage is not a busy loop.
const ERROR_BACKOFF_MS = 250;
// While every slot is busy, readiness is re-read at most this often (each enqueue wakes it).
const BUSY_REFRESH_GAP_MS = 20;

/** What a {@link ReadyRefresher} works with. */
export interface ReadyRefresherOptions {
  engine: QueueEngine;
  queue: string;
  tenants: TenantDirectory;
  pollIntervalMs: number;
  /** How often to put back jobs whose lock expired (`engine.recoverStalled`). */
  stalledIntervalMs: number;
  /** How often to read every known org again (a new weight, cap or deactivation). */
  orgRefreshMs: number;
  /** Jobs whose lock expired were put back. */
  onRecovered: (moved: number) => void;
  /** Tenants may have become pickable: wake an idle slot. */
  onReady: () => void;
  /** Whether some slot is idle (then every wake-up is worth a read at once). */
  hasIdleSlot: () => boolean;
  onError: (error: unknown, during: string) => void;
}

/**
 * Keeps a worker's picker in step with the engine's ready index: reads the ready
 * tenants, admits them, then waits for the engine's wake-up (an enqueue, a retry, a
 * delayed job coming due), the poll interval, or a {@link soon} kick, and reads again.
 * Beside the loop, two chores on timers: putting back jobs whose lock expired (they are
 * ready again) and reading the known orgs again.
 */
export class ReadyRefresher {
  readonly #o: ReadyRefresherOptions;
  readonly #stop = new AbortController();
  /** Aborting it ends the current wait early (see {@link soon}); `stop()` aborts it too. */
  #kick = new AbortController();
  #kickTimer: NodeJS.Timeout | undefined;
  readonly #timers: NodeJS.Timeout[] = [];

  constructor(options: ReadyRefresherOptions) {
    this.#o = options;
  }

  /** The loop; resolves once {@link stop} has been called and the current pass ended. */
  async run(): Promise<void> {
    const { engine, queue, tenants } = this.#o;
    const signal = this.#stop.signal;
    this.#every(this.#o.stalledIntervalMs, () => this.#recoverStalled());
    this.#every(this.#o.orgRefreshMs, () => tenants.refresh().then(() => this.#o.onReady()));
    void this.#recoverStalled();
    while (!signal.aborted) {
      const started = Date.now();
      this.#kick = new AbortController();
      // Listen before asking, so an enqueue that lands while we ask still wakes us.
      const ready = engine
        // One signal per wait (stop() aborts the kick too), no AbortSignal.any per wait.
        .waitForReady(queue, this.#o.pollIntervalMs, this.#kick.signal)
        .catch((error) => {
          if (!signal.aborted) this.#o.onError(error, 'waitForReady');
        });
      try {
        await this.#o.tenants.admitReady();
        this.#o.onReady();
      } catch (error) {
        this.#o.onError(error, 'readyTenants');
        await sleep(ERROR_BACKOFF_MS, undefined, { signal }).catch(() => {});
      }
      await ready;
      // Busy (no idle slot): new tenants matter, but not at the rate of every enqueue.
      const gap = BUSY_REFRESH_GAP_MS - (Date.now() - started);
      if (!this.#o.hasIdleSlot() && gap > 0 && !signal.aborted) {
        await sleep(gap, undefined, { signal }).catch(() => {});
      }
    }
  }

  /** Reads the ready index again after `delayMs` at the latest (kicks already due are not doubled). */
  soon(delayMs: number): void {
    if (this.#kickTimer !== undefined || this.#stop.signal.aborted) return;
    this.#kickTimer = setTimeout(() => {
      this.#kickTimer = undefined;
      this.#kick.abort();
    }, delayMs);
  }

  /** Ends the loop: the current wait returns at once. */
  stop(): void {
    this.#stop.abort();
    this.#kick.abort();
    clearTimeout(this.#kickTimer);
    for (const timer of this.#timers) clearInterval(timer);
  }

  async #recoverStalled(): Promise<void> {
    if (this.#stop.signal.aborted) return;
    try {
      const moved = await this.#o.engine.recoverStalled(this.#o.queue);
      if (moved > 0) this.#o.onRecovered(moved);
    } catch (error) {
      this.#o.onError(error, 'recoverStalled');
    }
  }

  #every(ms: number, fn: () => unknown): void {
    const timer = setInterval(fn, ms);
    timer.unref();
    this.#timers.push(timer);
  }
}
