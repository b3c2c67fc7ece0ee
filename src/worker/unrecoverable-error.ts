/**
 * Thrown by a job handler to say that retrying cannot help (bad input, a deleted
 * record): the job fails at once, whatever attempts it has left.
 *
 * It is the handler's error, not the fleet's, so it extends `Error` rather than
 * `FleetError`; the worker recognises it by class (or by `unrecoverable === true`, so
 * that a copy from another bundle of the library still counts).
 */
export class UnrecoverableError extends Error {
  /** Marks the error for the worker, whatever realm or bundle it comes from. */
  readonly unrecoverable = true;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UnrecoverableError';
  }
}

/** Whether `error` asks for no more retries. */
export function isUnrecoverable(error: unknown): boolean {
  return (
    error instanceof UnrecoverableError ||
    (typeof error === 'object' &&
      error !== null &&
      (error as { unrecoverable?: unknown }).unrecoverable === true)
  );
}
