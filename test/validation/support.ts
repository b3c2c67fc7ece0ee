/**
 * What the bad-input suites (test/validation/) share: the field a typed error names, a
 * duration past what a timer holds, and the Redis keys a row may have left under a prefix.
 */
import type { Redis } from 'ioredis';
import { ConfigError, type FleetError, ValidationError } from '../../src/reporting/errors.js';

/** A FleetError subclass, as a row of a table names it. */
export type ErrorClass = new (...args: never[]) => FleetError;

/** The field a FleetError names: `option` of a ConfigError, `field` of a ValidationError. */
export function fieldOf(err: unknown): string | undefined {
  if (err instanceof ConfigError) return err.option;
  if (err instanceof ValidationError) return err.field;
  return undefined;
}

/** A duration past 2³¹−1 ms, which Node's timers would fire at once. */
export const TOO_LONG = 3_000_000_000;

/** How many keys live under `prefix` (a row that wrote nothing leaves none). */
export async function keysUnder(redis: Redis, prefix: string): Promise<number> {
  let count = 0;
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    count += found.length;
  } while (cursor !== '0');
  return count;
}
