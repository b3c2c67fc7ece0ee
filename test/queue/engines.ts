/**
 * The queue engines the conformance suite runs over, each opened on names of its own
 * (a random Redis prefix) and cleaned up afterwards, the way kysely loops over dialects.
 */
import type { TenantQueueBackend } from '../../src/queue/backend.js';
import { MemoryBackend } from '../../src/queue/memory.js';

/** One engine under test. */
export interface EngineHarness {
  backend: TenantQueueBackend;
  /** A second handle on the same store, as another worker process would have. */
  peer(): Promise<TenantQueueBackend>;
  /** Closes every handle and removes what the test stored. */
  cleanup(): Promise<void>;
}

/** A named way to open an engine for one test. */
export interface EngineCase {
  name: string;
  open(): Promise<EngineHarness>;
}

export const memoryEngine: EngineCase = {
  name: 'memory',
  async open() {
    const backend = new MemoryBackend();
    return {
      backend,
      peer: async () => backend,
      cleanup: () => backend.close(),
    };
  },
};

/** Every engine the conformance suite covers. */
export const engines: EngineCase[] = [memoryEngine];
