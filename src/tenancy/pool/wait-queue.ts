/**
 * A FIFO queue of callers waiting for something (a connection, a place among the cached
 * pools), each with a deadline and an optional AbortSignal. A waiter that times out or
 * is aborted leaves the queue at once, so nothing is ever handed to a caller that is gone.
 */

/** One queued caller; `resolve`/`reject` settle it and clear its timer and listener. */
export interface Waiter<T> {
  resolve(value: T): void;
  reject(err: Error): void;
}

/** How one caller waits. */
export interface WaitSpec {
  /** Epoch milliseconds after which the wait ends with `timeoutError()`. */
  deadline: number;
  timeoutError(): Error;
  /** Ends the wait with the signal's reason. */
  signal?: AbortSignal | undefined;
}

/** FIFO waiters with deadlines and abort signals. */
export class WaitQueue<T> {
  readonly #waiters: Array<Waiter<T> & { readonly key: unknown }> = [];
  readonly #onLeave: () => void;

  /** @param onLeave called after a waiter left by timeout or abort (not when settled). */
  constructor(onLeave: () => void = () => {}) {
    this.#onLeave = onLeave;
  }

  get length(): number {
    return this.#waiters.length;
  }

  /**
   * Queues a caller; the returned promise settles when it is served, times out or is
   * aborted. `key` tags the caller for {@link takeKeyed}.
   */
  wait(spec: WaitSpec, key?: unknown): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const { signal } = spec;
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const leave = (err: Error) => {
        const index = this.#waiters.indexOf(waiter);
        if (index === -1) return;
        this.#waiters.splice(index, 1);
        cleanup();
        reject(err);
        this.#onLeave();
      };
      const onAbort = () => leave(signal?.reason as Error);
      const timer = setTimeout(() => leave(spec.timeoutError()), Math.max(0, spec.deadline - Date.now()));
      const waiter: Waiter<T> & { readonly key: unknown } = {
        key,
        resolve: (value) => {
          cleanup();
          resolve(value);
        },
        reject: (err) => {
          cleanup();
          reject(err);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  /** Takes the oldest waiter off the queue, for the caller to settle. */
  shift(): Waiter<T> | undefined {
    return this.#waiters.shift();
  }

  /** Takes every waiter queued with `key` off the queue, oldest first, for the caller to settle. */
  takeKeyed(key: unknown): Waiter<T>[] {
    const taken: Waiter<T>[] = [];
    for (let i = 0; i < this.#waiters.length; ) {
      const waiter = this.#waiters[i] as Waiter<T> & { readonly key: unknown };
      if (waiter.key === key) {
        this.#waiters.splice(i, 1);
        taken.push(waiter);
      } else i++;
    }
    return taken;
  }

  /** Rejects every waiter with `err`. */
  rejectAll(err: Error): void {
    for (const waiter of this.#waiters.splice(0)) waiter.reject(err);
  }
}

/**
 * Settles like `promise`, or rejects at the deadline with `spec.timeoutError()` or on
 * abort with the signal's reason, whichever comes first. A promise given up on is left to
 * settle unheard (its rejection handled), for work that cannot be cancelled: a registry
 * lookup, a secrets kind call.
 */
export function withinDeadline<T>(promise: Promise<T>, spec: WaitSpec): Promise<T> {
  promise.catch(() => {});
  const { signal } = spec;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = () => {
      cleanup();
      reject(signal?.reason);
    };
    const timer = setTimeout(
      () => {
        cleanup();
        reject(spec.timeoutError());
      },
      Math.max(0, spec.deadline - Date.now()),
    );
    signal?.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        cleanup();
        resolve(value);
      },
      (err: unknown) => {
        cleanup();
        reject(err);
      },
    );
  });
}
