/** The options of `TenantPools.acquire` and their check. */
import { describe, ValidationError } from '../../reporting/errors.js';

/** Options of `acquire`. */
export interface AcquireOptions {
  /** Ends the wait with the signal's reason; no slot is kept for an aborted acquire. */
  signal?: AbortSignal;
}

/** The signal of `acquire`'s options; {@link ValidationError} for options or a signal of the wrong type. */
export function acquireSignal(options: AcquireOptions): AbortSignal | undefined {
  if (typeof options !== 'object' || options === null) {
    throw new ValidationError(
      'options',
      `Expected acquire options to be an object, got ${describe(options)}`,
    );
  }
  const { signal } = options;
  if (signal === undefined || signal instanceof AbortSignal) return signal;
  throw new ValidationError('signal', `Expected \`signal\` to be an AbortSignal, got ${describe(signal)}`);
}
