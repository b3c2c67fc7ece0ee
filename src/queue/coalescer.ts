/**
 * The mechanism the engines' batched writes share (pgboss/settle-batcher.ts,
 * pgboss/cap-writer.ts, bullmq/partition/caps.ts): callers add to the pending batch; it goes out at the next turn of the
 * event loop while fewer than `maxInFlight` batches are in flight, and what arrives
 * meanwhile rides the next one. Nothing waits to fill a batch. `send` settles the
 * callers of its batch itself and must not throw.
 */
export interface CoalescerOptions<B> {
  maxInFlight: number;
  /** A fresh, empty batch. */
  create: () => B;
  isEmpty: (batch: B) => boolean;
  send: (batch: B) => Promise<void>;
}

/** Batches of `B`, sent as they fill while earlier ones are in flight. */
export class Coalescer<B> {
  readonly #o: CoalescerOptions<B>;
  #pending: B;
  #inFlight = 0;
  #scheduled = false;
  /** Callers of `drain` waiting for a batch in flight to come back. */
  #drained: Array<() => void> = [];

  constructor(options: CoalescerOptions<B>) {
    this.#o = options;
    this.#pending = options.create();
  }

  /** Adds to the pending batch (`add` fills it) and schedules its sending. */
  add(add: (batch: B) => void): void {
    add(this.#pending);
    this.#schedule();
  }

  /** Resolves once nothing is pending or in flight. */
  async drain(): Promise<void> {
    while (!this.#o.isEmpty(this.#pending) || this.#inFlight > 0) {
      if (this.#inFlight === 0) await this.#flush();
      else await new Promise<void>((resolve) => this.#drained.push(resolve));
    }
  }

  #schedule(): void {
    if (this.#scheduled || this.#inFlight >= this.#o.maxInFlight) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    if (this.#o.isEmpty(this.#pending) || this.#inFlight >= this.#o.maxInFlight) return;
    const batch = this.#pending;
    this.#pending = this.#o.create();
    this.#inFlight += 1;
    try {
      await this.#o.send(batch);
    } finally {
      this.#inFlight -= 1;
      for (const resolve of this.#drained.splice(0)) resolve();
      if (!this.#o.isEmpty(this.#pending)) this.#schedule();
    }
  }
}
