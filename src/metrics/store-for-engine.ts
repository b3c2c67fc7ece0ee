/** The snapshot store that lives in a given queue engine. */
import { BullMqEngine } from '../queue/bullmq/bullmq-engine.js';
import type { QueueEngine } from '../queue/engine.js';
import { PgBossEngine } from '../queue/pgboss/pgboss-engine.js';
import { PostgresSnapshotStore } from './postgres-snapshot-store.js';
import { RedisSnapshotStore } from './redis-snapshot-store.js';
import { memorySnapshotStore, type SnapshotStore } from './snapshot-store.js';

/**
 * Redis keys under the engine's prefix for BullMQ (over the engine's connection when it
 * was given an ioredis instance, else over one more connection of the store's own); a
 * table in the engine's schema for pg-boss (over a pool of the store's own);
 * for the in-memory engine, the one store of this process shared by everything that
 * uses the engine. Closing the store never closes the engine or its connection.
 */
export function snapshotStoreFor(engine: QueueEngine): SnapshotStore {
  if (engine instanceof BullMqEngine)
    return new RedisSnapshotStore({ connection: engine.options.connection, prefix: engine.options.prefix });
  if (engine instanceof PgBossEngine)
    return new PostgresSnapshotStore({ database: engine.options.database, schema: engine.options.schema });
  const shared = memorySnapshotStore(engine);
  // The shared store outlives any one user: closing a user's handle must not clear it.
  return {
    publish: (snapshot, ttlMs) => shared.publish(snapshot, ttlMs),
    list: () => shared.list(),
    remove: (id) => shared.remove(id),
    close: async () => {},
  };
}
