/**
 * The queue engines the conformance suite runs over, each opened on names of its own
 * (a random Redis prefix) and cleaned up afterwards, the way kysely loops over dialects.
 */
import { Redis } from 'ioredis';
import pg from 'pg';
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

/** A case whose handles all open on one store, removed by `drop` once they are closed. */
function storeCase(name: string, open: () => QueueEngine, drop: () => Promise<void>): EngineCase {
  return {
    name,
    async open() {
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
    },
  };
}

export const bullMqEngine: EngineCase = {
  name: 'bullmq',
  open() {
    const store = openBullMq();
    return storeCase(
      'bullmq',
      () => store.open(),
      () => deletePrefix(store.prefix),
    ).open();
  },
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
  open() {
    const store = openPgBoss();
    return storeCase(
      'pgboss',
      () => store.open(),
      () => dropSchema(store.schema),
    ).open();
  },
};

/** Every engine the conformance suite covers. */
export const engines: EngineCase[] = [memoryEngine, bullMqEngine, pgBossEngine];
