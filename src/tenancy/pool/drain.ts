/**
 * Closing one {@link ConnectionPool} and knowing when it is done. Once closed, the pool
 * drains: idle connections close at once, lent ones when released (for the reason the pool
 * was closed with), and the promise `close()` returns resolves only when nothing is open,
 * being opened, closing or asked of the budget any more. A connection's budget slot is
 * freed only once its close has completed, so a drained pool has given every slot back.
 */
import type { RawConnection } from '../drivers/driver.js';
import type { CloseReason } from './types.js';

/** Whether and why a pool was closed, the connection closes in flight, and its drain. */
export class PoolDrain {
  // What the pool holds besides closing connections: open, being opened, slots asked for.
  readonly #held: () => number;
  #closed = false;
  #reason: CloseReason = 'close';
  // Connections whose close has started and not yet completed.
  #closing = 0;
  #drained: { promise: Promise<void>; resolve(): void } | undefined;

  /**
   * @param held connections open or being opened, plus budget slots asked for, right now
   */
  constructor(held: () => number) {
    this.#held = held;
  }

  /** True once the pool was closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Why the pool was closed ('evict' or 'close'): lent connections close for it on release. */
  get reason(): CloseReason {
    return this.#reason;
  }

  /** Marks the pool closed; the first reason given sticks. */
  close(reason: CloseReason): void {
    if (!this.#closed) this.#reason = reason;
    this.#closed = true;
  }

  /**
   * Resolves once the pool is drained. Called by the pool's `close()` after it started
   * closing what it could, so an already empty pool resolves at once.
   */
  drained(): Promise<void> {
    if (!this.#drained) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      this.#drained = { promise, resolve };
    }
    this.check();
    return this.#drained.promise;
  }

  /**
   * Closes a connection, counted as closing until the close completes; `closed` runs then
   * (freeing the slot, reporting the close), and the pool may have drained. `before`
   * (cancelling an abandoned statement) runs while it closes and never rejects.
   */
  async closeConnection(raw: RawConnection, closed: () => void, before?: () => Promise<void>): Promise<void> {
    this.#closing++;
    try {
      // The close starts first, so nothing queued behind the running statement is sent.
      const closing = raw.close();
      if (before) await before();
      await closing;
    } finally {
      this.#closing--;
      closed();
      this.check();
    }
  }

  /** Resolves the drain, once asked for, when nothing is held or closing any more. */
  check(): void {
    if (this.#drained && this.#held() + this.#closing === 0) this.#drained.resolve();
  }
}
