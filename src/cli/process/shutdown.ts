/**
 * Graceful shutdown for long-running commands: the first SIGINT or SIGTERM resolves
 * {@link waitForShutdown} so the command closes its worker and fleet and exits 0; a
 * second one, while that close is still running, exits at once with code 130.
 */

/** The signals that stop a long-running command. */
export const SHUTDOWN_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/** Resolves with the first shutdown signal received (or when `signal` aborts). */
export function waitForShutdown(signal?: AbortSignal): Promise<NodeJS.Signals | 'abort'> {
  return new Promise((resolve) => {
    let received = false;
    const onSignal = (name: NodeJS.Signals) => {
      if (received) {
        process.stderr.write(`received ${name} again: exiting without waiting\n`);
        process.exit(130);
      }
      received = true;
      resolve(name);
    };
    for (const name of SHUTDOWN_SIGNALS) process.on(name, onSignal);
    signal?.addEventListener('abort', () => resolve('abort'), { once: true });
  });
}
