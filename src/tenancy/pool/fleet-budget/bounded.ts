/** A time bound on one call to the lease store (see lease-store.ts for why). */

/** `work`, or a rejection saying `what` did not answer once `ms` have passed. */
export function bounded<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  work.catch(() => {
    // Whatever it ends with after the bound, nobody waits for it any more.
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}
