/**
 * The bounds every options resolver checks numbers against, written once so that a
 * duration or a size means the same thing in every part of the library.
 *
 * Durations end up in Node's timers, which hold a signed 32-bit number of milliseconds:
 * a larger delay (3,000,000,000 ms, or Infinity) is silently replaced by 1 ms, so a
 * "very long" timeout would fire at once. Every duration is therefore an integer no
 * larger than {@link MAX_DURATION_MS} (about 24.8 days).
 */
import { ConfigError, describe } from './reporting/errors.js';

/** The longest delay Node's timers hold: 2³¹−1 ms, about 24.8 days. */
export const MAX_DURATION_MS = 2_147_483_647;

/**
 * Checks an integer option between `min` and `max` inclusive, and returns it.
 * Throws {@link ConfigError} naming `field`, the range expected and the value got.
 */
export function integerOption(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(
      field,
      `Expected \`${field}\` to be an integer between ${min} and ${max}, got ${describe(value)}`,
    );
  }
  return value;
}

/**
 * Checks a duration in milliseconds: an integer from `min` up to what a timer can hold
 * ({@link MAX_DURATION_MS}). Throws {@link ConfigError} naming `field`.
 */
export function durationOption(field: string, value: unknown, min: number): number {
  return integerOption(field, value, min, MAX_DURATION_MS);
}
