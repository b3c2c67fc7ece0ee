/**
 * Polling helpers shared by the suites: wait for a condition the code under test will
 * reach, and fail with what was awaited rather than with the test's own timeout.
 */

/** How long and how often {@link until} and {@link eventually} poll. */
export interface PollOptions {
  /** Give up (throw) after this long. @default 50_000 */
  timeoutMs?: number;
  /** Pause between two checks. @default 5 */
  intervalMs?: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves once `check` returns true; throws "gave up waiting for `what`" after the timeout. */
export async function until(
  check: () => boolean | Promise<boolean>,
  what = 'a condition',
  { timeoutMs = 50_000, intervalMs = 5 }: PollOptions = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${timeoutMs} ms`);
    await sleep(intervalMs);
  }
}

/** Resolves to the first value of `fn` that is not null; throws like {@link until}. */
export async function eventually<T>(
  fn: () => Promise<T | null>,
  what: string,
  options: PollOptions = {},
): Promise<T> {
  let value: T | null = null;
  await until(
    async () => {
      value = await fn();
      return value !== null;
    },
    what,
    options,
  );
  return value as T;
}
