/**
 * Where process snapshots live: in the engine. On BullMQ, Redis keys with a TTL
 * (`redis-snapshot-store.ts`); on pg-boss, a table (`postgres-snapshot-store.ts`); on the
 * in-memory engine, a map beside the engine in the
 * one process that has it.
 */
import type { QueueEngine } from '../queue/engine.js';
import type { ProcessSnapshot } from './snapshot.js';

/** Stores the snapshots of a fleet's processes. */
export interface SnapshotStore {
  /** Writes (or overwrites) a process's snapshot; it expires after `ttlMs` unless written again. */
  publish(snapshot: ProcessSnapshot, ttlMs: number): Promise<void>;
  /** Every snapshot not yet expired (a reader still checks heartbeats). */
  list(): Promise<ProcessSnapshot[]>;
  /** Removes a process's snapshot (a clean shutdown). */
  remove(id: string): Promise<void>;
  /** Releases what the store opened; idempotent. */
  close(): Promise<void>;
}

/** The snapshots of the processes using one in-memory engine: in this process only. */
export class MemorySnapshotStore implements SnapshotStore {
  readonly #entries = new Map<string, { snapshot: ProcessSnapshot; expiresAt: number }>();

  async publish(snapshot: ProcessSnapshot, ttlMs: number): Promise<void> {
    this.#entries.set(snapshot.id, { snapshot: structuredClone(snapshot), expiresAt: Date.now() + ttlMs });
  }

  async list(): Promise<ProcessSnapshot[]> {
    const now = Date.now();
    const live: ProcessSnapshot[] = [];
    for (const [id, entry] of this.#entries) {
      if (entry.expiresAt <= now) this.#entries.delete(id);
      else live.push(structuredClone(entry.snapshot));
    }
    return live;
  }

  async remove(id: string): Promise<void> {
    this.#entries.delete(id);
  }

  async close(): Promise<void> {}
}

const memoryStores = new WeakMap<QueueEngine, MemorySnapshotStore>();

/** The one in-process store shared by everything that uses `engine` (a memory engine). */
export function memorySnapshotStore(engine: QueueEngine): MemorySnapshotStore {
  let store = memoryStores.get(engine);
  if (!store) {
    store = new MemorySnapshotStore();
    memoryStores.set(engine, store);
  }
  return store;
}
