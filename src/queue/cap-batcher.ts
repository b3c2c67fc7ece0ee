/**
 * What both engines' `setTenantConcurrency` share (pgboss/cap-writer.ts,
 * bullmq/partition/caps.ts): the caps asked for while a write is in flight wait in one
 * batch, the last cap asked for a partition winning, and go out together (coalescer.ts).
 * The engine's `send` writes a batch and settles its callers ({@link settleCap}).
 */
import { Coalescer } from './coalescer.js';
import { getOrCreate } from './get-or-create.js';

/** The cap last asked for a partition (null lifts it), and every caller waiting for it. */
export interface PendingCap {
  cap: number | null;
  waiters: Array<{ resolve: () => void; reject: (error: unknown) => void }>;
}

/** By queue, then tenant. */
export type CapBatch = Map<string, Map<string, PendingCap>>;

/** Resolves the callers of `pending`, or rejects them with `failure.error`. */
export function settleCap(pending: PendingCap, failure?: { error: unknown }): void {
  for (const waiter of pending.waiters) failure ? waiter.reject(failure.error) : waiter.resolve();
}

/** Caps coalesced into batches that `send` writes, one batch in flight at a time. */
export class CapBatcher {
  readonly #batches: Coalescer<CapBatch>;

  /** `send` must not throw: it settles every cap of its batch itself. */
  constructor(send: (batch: CapBatch) => Promise<void>) {
    this.#batches = new Coalescer<CapBatch>({
      maxInFlight: 1,
      create: () => new Map(),
      isEmpty: (batch) => batch.size === 0,
      send,
    });
  }

  /**
   * Resolves once every cap of `caps` (checked tenants of a checked queue; null lifts) is
   * written, or rejects with the first write that failed. One waiter for them all, so a
   * worker seeing ten thousand tenants at once holds one promise, not ten thousand.
   */
  set(queue: string, caps: ReadonlyArray<readonly [string, number | null]>): Promise<void> {
    if (caps.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let remaining = 0;
      const waiter = {
        resolve: () => {
          if (--remaining === 0) resolve();
        },
        reject,
      };
      this.#batches.add((batch) => {
        const tenants = getOrCreate(batch, queue, () => new Map<string, PendingCap>());
        for (const [tenant, cap] of caps) {
          const pending = tenants.get(tenant) ?? { cap, waiters: [] };
          pending.cap = cap;
          pending.waiters.push(waiter);
          remaining += 1;
          tenants.set(tenant, pending);
        }
      });
    });
  }

  /** Resolves once no cap is pending or being written. */
  drain(): Promise<void> {
    return this.#batches.drain();
  }
}
