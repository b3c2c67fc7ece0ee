/**
 * The queue engines the conformance suite runs over, each opened on names of its own
 * (a random Redis prefix) and cleaned up afterwards, the way kysely loops over dialects.
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import { inject } from 'vitest';
import { BullMqEngine, type BullMqEngineOptions } from '../../src/queue/bullmq/bullmq-engine.js';
import type { QueueEngine } from '../../src/queue/engine.js';
import { MemoryEngine } from '../../src/queue/memory/memory-engine.js';
import { PgBossEngine, type PgBossEngineOptions } from '../../src/queue/pgboss/pgboss-engine.js';
import { PG_URL, REDIS_URL, uniqueName } from '../support/services.js';

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

/**
 * Deletes every key under `prefix` (SCAN, never KEYS, on a shared server) on each of
 * `servers` (every master of a cluster), one key per UNLINK so no command spans slots.
 */
export async function deletePrefix(prefix: string, servers: readonly string[] = [REDIS_URL]): Promise<void> {
  for (const url of servers) {
    const redis = new Redis(url);
    try {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) {
          const pipeline = redis.pipeline();
          for (const key of keys) pipeline.unlink(key);
          await pipeline.exec();
        }
      } while (cursor !== '0');
    } finally {
      await redis.quit();
    }
  }
}

/** The masters of the run's local Redis Cluster (test/support/redis-cluster-setup.ts). */
export function clusterNodes(): string[] {
  return inject('redisClusterNodes');
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

/** A case whose handles all open on one store, removed by `drop` once they are closed. */
function storeHarness(open: () => QueueEngine, drop: () => Promise<void>): EngineHarness {
  const handles = [open()];
  return {
    engine: handles[0]!,
    peer: async () => {
      const peer = open();
      handles.push(peer);
      return peer;
    },
    cleanup: async () => {
      await Promise.all(handles.map((handle) => handle.close()));
      await drop();
    },
  };
}

/** Handles on one BullMQ store, closed and deleted (on each of `servers`) by cleanup. */
function bullMqHarness(store: ReturnType<typeof openBullMq>, servers?: readonly string[]): EngineHarness {
  return storeHarness(
    () => store.open(),
    () => deletePrefix(store.prefix, servers),
  );
}

export const bullMqEngine: EngineCase = {
  name: 'bullmq',
  open: async () => bullMqHarness(openBullMq()),
};

/** Drops a pg-boss schema the tests created, with everything in it. */
export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}

/** A pg-boss engine on its own schema (a unique name), so tests never share jobs. */
export function openPgBoss(options: Partial<PgBossEngineOptions> = {}): {
  schema: string;
  open(extra?: Partial<PgBossEngineOptions>): PgBossEngine;
} {
  const schema =
    options.schema ??
    uniqueName('fleettest')
      .toLowerCase()
      .replace(/[^a-z0-9_]/g, '_');
  return {
    schema,
    open: (extra = {}) => new PgBossEngine({ database: PG_URL, ...options, ...extra, schema }),
  };
}

export const pgBossEngine: EngineCase = {
  name: 'pgboss',
  open: async () => {
    const store = openPgBoss();
    return storeHarness(
      () => store.open(),
      () => dropSchema(store.schema),
    );
  },
};

/** The BullMQ engine on the local three-master Redis Cluster, each queue over `shards` slots. */
function bullMqClusterEngine(shards: number): EngineCase {
  return {
    name: `bullmq-cluster-${shards}`,
    open: async () =>
      bullMqHarness(openBullMq({ connection: { cluster: clusterNodes() }, shards }), clusterNodes()),
  };
}

export const bullMqCluster1 = bullMqClusterEngine(1);
export const bullMqCluster3 = bullMqClusterEngine(3);

/** Every engine the conformance suite covers. */
export const engines: EngineCase[] = [
  memoryEngine,
  bullMqEngine,
  bullMqCluster1,
  bullMqCluster3,
  pgBossEngine,
];
