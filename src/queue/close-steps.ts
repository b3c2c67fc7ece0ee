/**
 * A close with a deadline: cleanup steps run in order, each in its own try/catch (its
 * error handed to `onError`), and the whole is bounded by `timeoutMs`.
 */

/** Runs `steps`; resolves to 'timeout' if the deadline came first (the steps keep running). */
export async function runCloseSteps(
  steps: readonly (() => Promise<unknown>)[],
  timeoutMs: number,
  onError: (error: Error) => void,
): Promise<'done' | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const work = (async () => {
    for (const step of steps) {
      try {
        await step();
      } catch (error) {
        onError(error as Error);
      }
    }
    return 'done' as const;
  })();
  const outcome = await Promise.race([work, deadline]);
  clearTimeout(timer);
  return outcome;
}
