/** A time bound on one call to the lease store (see lease-store.ts for why). */

/** The store gave no answer within a call's bound (it is down, hangs, or is far too slow). */
export class NoAnswerError extends Error {
  constructor(what: string, ms: number) {
    super(`${what} did not answer within ${ms} ms`);
    this.name = 'NoAnswerError';
  }
}

/** `work`, or a NoAnswerError saying `what` did not answer once `ms` have passed. */
export function bounded<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new NoAnswerError(what, ms)), ms);
  });
  work.catch(() => {
    // Whatever it ends with after the bound, nobody waits for it any more.
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}
