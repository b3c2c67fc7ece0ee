/** Options of the in-memory engine, with their defaults and checks. */
import { integerOption } from '../../validate.js';

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

// Every kept job body stays in this process's heap: a million per partition is already
// past what a process should hold, and a job put back more than 1,000 times never
// finishes. `data` is bounded like the BullMQ engine's (Redis' 512 MiB string limit), so
// a fleet can switch engines without a job becoming unstorable.
const SIZES = {
  keepCompleted: [0, 1_000_000],
  keepFailed: [0, 1_000_000],
  maxStalledCount: [0, 1_000],
  maxDataBytes: [1, 512 * 1024 * 1024],
} as const;

/** Applies defaults and checks every option; throws `ConfigError`. */
export function resolveMemoryEngineOptions(options: MemoryEngineOptions = {}): ResolvedMemoryEngineOptions {
  const resolved = { ...DEFAULTS, ...options };
  for (const [key, [min, max]] of Object.entries(SIZES))
    integerOption(key, resolved[key as keyof typeof SIZES], min, max);
  return resolved;
}
