/** Options of the in-memory engine, with their defaults and checks. */
import { ConfigError, describe } from '../../errors.js';

/** Options of `MemoryEngine`. */
export interface MemoryEngineOptions {
  /** Completed jobs whose bodies are kept per partition (counts are always kept). @default 100 */
  keepCompleted?: number;
  /** Failed jobs whose bodies (with their error) are kept per partition. @default 1000 */
  keepFailed?: number;
  /** Times a job may lose its lock and be put back before it is failed instead. @default 1 */
  maxStalledCount?: number;
  /** Largest `data` accepted, in bytes of JSON. @default 524288 */
  maxDataBytes?: number;
}

/** {@link MemoryEngineOptions} with every default applied. */
export type ResolvedMemoryEngineOptions = Required<MemoryEngineOptions>;

const DEFAULTS = {
  keepCompleted: 100,
  keepFailed: 1000,
  maxStalledCount: 1,
  maxDataBytes: 512 * 1024,
} satisfies ResolvedMemoryEngineOptions;

/** Applies defaults and checks every option; throws `ConfigError`. */
export function resolveMemoryEngineOptions(options: MemoryEngineOptions = {}): ResolvedMemoryEngineOptions {
  const resolved = { ...DEFAULTS, ...options };
  for (const [key, value] of Object.entries(resolved)) {
    const min = key === 'maxDataBytes' ? 1 : 0;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min)
      throw new ConfigError(key, `Expected \`${key}\` to be an integer ≥ ${min}, got ${describe(value)}`);
  }
  return resolved;
}
