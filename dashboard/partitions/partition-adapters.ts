/**
 * Where bull-board's adapters for the partitions come from, one kind per engine: on
 * BullMQ, bull-board's own BullMQAdapter over a `Queue` per partition on one shared
 * Redis connection; on pg-boss, {@link PgBossPartitionAdapter} over one board (a small
 * pool of its own); on the in-memory engine, the read-only {@link MemoryPartitionAdapter}.
 */
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import type { BaseAdapter } from '@bull-board/api/dist/queueAdapters/base.js';
import { Queue } from 'bullmq';
import type { BullMqEngine } from '../../src/queue/bullmq/bullmq-engine.js';
import { openConnection } from '../../src/queue/bullmq/cluster/connection.js';
import { partitionName } from '../../src/queue/bullmq/partition/partitions.js';
import type { MemoryEngine } from '../../src/queue/memory/memory-engine.js';
import { PgBossBoard } from '../../src/queue/pgboss/board.js';
import type { PgBossEngine } from '../../src/queue/pgboss/pgboss-engine.js';
import { MemoryPartitionAdapter } from './memory-adapter.js';
import { PgBossPartitionAdapter } from './pgboss-adapter.js';

/** One registered partition: its adapter, and what to close when it is dropped. */
export interface PartitionAdapter {
  adapter: BaseAdapter;
  close(): Promise<void>;
}

/** Makes the adapters of one engine's partitions. */
export interface PartitionAdapters {
  /** The adapter of `tenant`'s partition of `queue`, named `queue.tenant`. */
  create(queue: string, tenant: string): PartitionAdapter;
  /** Closes what the factory opened; idempotent. */
  close(): Promise<void>;
}

/** BullMQ partitions through BullMQ's own `Queue`: bull-board's writes work (unless `readOnly`). */
export function bullMqAdapters(engine: BullMqEngine, readOnly: boolean): PartitionAdapters {
  const { redis, owns: ownsRedis } = openConnection(engine.options.connection, 'tenant-fleet:dashboard');
  if (ownsRedis) redis.on('error', () => {});
  let closed: Promise<void> | null = null;
  return {
    create(queue, tenant) {
      const partition = new Queue(partitionName(queue, tenant), {
        connection: redis,
        prefix: engine.partitionPrefix(queue, tenant),
        skipVersionCheck: true,
      } as never);
      return {
        adapter: new BullMQAdapter(partition, { readOnlyMode: readOnly, delimiter: '.' }),
        close: () => partition.close(),
      };
    },
    close() {
      closed ??= ownsRedis
        ? redis.quit().then(
            () => {},
            () => redis.disconnect(),
          )
        : Promise.resolve();
      return closed;
    },
  };
}

/** The in-memory engine's partitions, read-only (the engine takes no write from outside a worker). */
export function memoryAdapters(engine: MemoryEngine): PartitionAdapters {
  return {
    create: (queue, tenant) => ({
      adapter: new MemoryPartitionAdapter(engine, queue, tenant),
      close: async () => {},
    }),
    close: async () => {},
  };
}

/** pg-boss partitions through the engine's board: bull-board's retry, promote, remove and clean work (unless `readOnly`). */
export function pgBossAdapters(engine: PgBossEngine, readOnly: boolean): PartitionAdapters {
  const board = new PgBossBoard(engine.options.database, engine.options.schema);
  return {
    create: (queue, tenant) => ({
      adapter: new PgBossPartitionAdapter(engine, board, queue, tenant, readOnly),
      close: async () => {},
    }),
    close: () => board.close(),
  };
}
