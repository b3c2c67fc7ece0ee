/**
 * Shared set-up of the worker benchmarks: a registry with many tenants on a Postgres
 * database of its own, Redis key clean-up, and the raw BullMQ baseline.
 */
import { randomBytes } from 'node:crypto';
import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { connect } from '../src/tenancy/drivers/index.js';
import { OrgRegistry } from '../src/tenancy/registry.js';

/** Where the benchmarks find the services: the environment, or the test defaults. */
export const PG_URL = process.env.FLEET_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.FLEET_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export function unique(prefix: string): string {
  return `${prefix}_${randomBytes(4).toString('hex')}`;
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/** A registry on a fresh database with `count` schema-mode tenants `t0000`…; the first `provisioned` get their schema. */
export async function benchRegistry(
  count: number,
  provisioned: number,
): Promise<{ registry: OrgRegistry; slugs: string[]; drop(): Promise<void> }> {
  const name = unique('fleet_bench');
  const admin = await connect(PG_URL);
  await admin.query(`CREATE DATABASE "${name}"`);
  const registry = await OrgRegistry.open(withDatabase(PG_URL, name), { cacheTtlMs: 60_000 });
  await registry.migrate();
  const slugs = Array.from({ length: count }, (_, i) => `t${String(i).padStart(4, '0')}`);
  for (const slug of slugs) await registry.add({ slug });
  for (const slug of slugs.slice(0, provisioned)) await registry.provision(slug);
  return {
    registry,
    slugs,
    async drop() {
      await registry.close();
      await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await admin.close();
    },
  };
}

/** Host and port of {@link REDIS_URL}, for BullMQ classes that open their own connections. */
export function redisOptions(): { host: string; port: number; maxRetriesPerRequest: null } {
  const url = new URL(REDIS_URL);
  return { host: url.hostname, port: Number(url.port || 6379), maxRetriesPerRequest: null };
}

/** Deletes every Redis key under `prefix:`. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
}

/** Adds `count` jobs to one plain BullMQ queue, in bulks of 1,000. */
export async function rawEnqueue(
  queue: Queue,
  count: number,
  data: (i: number) => Record<string, unknown> = (i) => ({ i }),
): Promise<void> {
  for (let start = 0; start < count; start += 1000) {
    const size = Math.min(1000, count - start);
    await queue.addBulk(
      Array.from({ length: size }, (_, k) => ({
        name: 'noop',
        data: data(start + k),
        // The same retention as the fleet engine's default (keepCompleted: 100).
        opts: { removeOnComplete: 100, removeOnFail: 1000 },
      })),
    );
  }
}

/**
 * Raw BullMQ: one queue, one Worker with `concurrency`, `count` jobs enqueued first; the
 * time runs from the Worker's creation to the last completion.
 */
export async function rawBullmqRun(
  redis: Redis,
  count: number,
  concurrency: number,
  handler: () => Promise<unknown> = async () => {},
): Promise<{ ops: number; ms: number; failed: number }> {
  const prefix = unique('bench_raw');
  const queue = new Queue('bench', { connection: redis, prefix });
  await rawEnqueue(queue, count);
  let done = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const started = performance.now();
  const worker = new Worker('bench', handler, {
    connection: redisOptions(),
    prefix,
    concurrency,
    removeOnComplete: { count: 100 },
  });
  // A failed job counts too (and is reported), so a run can never hang on one.
  let failed = 0;
  worker.on('completed', () => {
    if (++done === count) finish();
  });
  worker.on('failed', () => {
    failed += 1;
    if (++done === count) finish();
  });
  await finished;
  const ms = performance.now() - started;
  await worker.close();
  await queue.close();
  await deleteKeys(redis, prefix);
  return { ops: count - failed, ms, failed };
}
