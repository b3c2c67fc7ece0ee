/**
 * The queue engines the conformance suite runs over, each opened on names of its own
 * (a random Redis prefix) and cleaned up afterwards, the way kysely loops over dialects.
 */
import { Redis } from 'ioredis';
import { BullMqEngine, type BullMqEngineOptions } from '../../src/queue/bullmq/bullmq-engine.js';
import type { QueueEngine } from '../../src/queue/engine.js';
import { MemoryEngine } from '../../src/queue/memory/memory-engine.js';
import { REDIS_URL, uniqueName } from '../support/services.js';

/** One engine under test. */
export interface EngineHarness {
  engine: QueueEngine;
  /** A second handle on the same store, as another worker process would have. */
  peer(): Promise<QueueEngine>;
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
    const engine = new MemoryEngine();
    return {
      engine,
      peer: async () => engine,
      cleanup: () => engine.close(),
    };
  },
};

/** Deletes every key under `prefix` (SCAN, never KEYS, on a shared server). */
export async function deletePrefix(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    await redis.quit();
  }
}

/** A BullMQ engine on its own random prefix, with a short stalled interval for tests. */
export function openBullMq(options: Partial<BullMqEngineOptions> = {}): {
  prefix: string;
  open(extra?: Partial<BullMqEngineOptions>): BullMqEngine;
} {
  const prefix = options.prefix ?? uniqueName('fleettest');
  return {
    prefix,
    open: (extra = {}) =>
      new BullMqEngine({ connection: REDIS_URL, stalledIntervalMs: 100, ...options, ...extra, prefix }),
  };
}

export const bullMqEngine: EngineCase = {
  name: 'bullmq',
  async open() {
    const store = openBullMq();
    const handles = [store.open()];
    return {
      engine: handles[0]!,
      peer: async () => {
        const peer = store.open();
        handles.push(peer);
        return peer;
      },
      cleanup: async () => {
        await Promise.all(handles.map((handle) => handle.close()));
        await deletePrefix(store.prefix);
      },
    };
  },
};

/** Every engine the conformance suite covers. */
export const engines: EngineCase[] = [memoryEngine, bullMqEngine];
