/** Value parsers for command-line flags: a bad value is a usage error (exit code 2). */
import { InvalidArgumentError } from 'commander';
import { Cron } from 'croner';
import { isCronPattern } from '../scheduler/fan-out-options.js';

/** An integer ≥ `min`. */
export function integer(min: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) {
      throw new InvalidArgumentError(`expected an integer ≥ ${min}, got ${JSON.stringify(value)}.`);
    }
    return n;
  };
}

/**
 * An integer ≥ 1, or `none` (clears a per-org override: see {@link noneAsNull}). Not null
 * itself: Commander stores a parser's null as an empty string.
 */
export function integerOrNone(value: string): number | 'none' {
  if (value === 'none' || value === 'null') return 'none';
  return integer(1)(value);
}

/** The value of an {@link integerOrNone} flag for the registry: `none` is null. */
export function noneAsNull(value: number | 'none'): number | null {
  return value === 'none' ? null : value;
}

/** A JSON value. */
export function json(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new InvalidArgumentError(
      `expected JSON, got ${JSON.stringify(value)} (${(err as Error).message}).`,
    );
  }
}

/** One of `choices`. */
export function oneOf<T extends string>(choices: readonly T[]): (value: string) => T {
  return (value) => {
    if (!choices.includes(value as T)) {
      throw new InvalidArgumentError(`expected one of ${choices.join(', ')}, got ${JSON.stringify(value)}.`);
    }
    return value as T;
  };
}

/** Collects a repeatable flag's values. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/**
 * A cron pattern of 5 fields, or 6 with seconds first, that croner accepts, checked as
 * the flag is parsed: a command such as `demo` must fail on it before it writes anything.
 */
export function cronPattern(value: string): string {
  let problem: string | undefined;
  if (!isCronPattern(value)) problem = 'it has neither 5 nor 6 fields';
  else {
    try {
      new Cron(value, { paused: true }).stop();
    } catch (err) {
      problem = (err as Error).message;
    }
  }
  if (problem !== undefined) {
    throw new InvalidArgumentError(
      `expected a cron pattern of 5 fields, or 6 with seconds first, got ${JSON.stringify(value)} (${problem}).`,
    );
  }
  return value;
}
