/**
 * Runs the steps of one key (a database server) one at a time, in the order asked, so
 * that a step's time bound starts when it is sent, not while it queues in this process.
 *
 * Postgres grants the leases of a server one take at a time anyway (each locks the
 * server's row until it commits), so sending a burst of takes at once gains nothing; it
 * only made each wait for the whole burst ahead of it inside its own bound, and a burst
 * of twenty on a busy server ran past the bound and read as "unreachable".
 *
 * A step queued behind one that got no answer (`cascades(error)`: the bound ran out) fails
 * at once with the same error: the same call would only wait out a bound of its own, and
 * a hung server would hold the last of a burst of N for N bounds. Behind any other failure
 * (one connection killed) the next step runs; so does a step asked after the failure.
 */

interface Entry {
  /** Settles when the step has, never rejecting. */
  done: Promise<void>;
  settled: boolean;
  failure?: { error: unknown };
}

export class SerialSteps {
  readonly #last = new Map<string, Entry>();
  readonly #cascades: (error: unknown) => boolean;

  constructor(cascades: (error: unknown) => boolean) {
    this.#cascades = cascades;
  }

  run<T>(key: string, step: () => Promise<T>): Promise<T> {
    const before = this.#last.get(key);
    const ahead = before?.settled === false ? before : undefined;
    const entry: Entry = { done: Promise.resolve(), settled: false };
    const result = (async () => {
      try {
        if (ahead) {
          await ahead.done;
          if (ahead.failure && this.#cascades(ahead.failure.error)) throw ahead.failure.error;
        }
        return await step();
      } catch (error) {
        entry.failure = { error };
        throw error;
      } finally {
        entry.settled = true;
        if (this.#last.get(key) === entry) this.#last.delete(key);
      }
    })();
    entry.done = result.then(
      () => undefined,
      () => undefined,
    );
    this.#last.set(key, entry);
    return result;
  }
}
