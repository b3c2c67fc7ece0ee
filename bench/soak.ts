/**
 * Soak (issue 13): does Redis memory stay flat under a steady load? `TENANTS` (200)
 * schema-mode tenants, a `select 1` on `ctx.db` per job, concurrency 50, a producer that
 * keeps the backlog at `BACKLOG` (20,000) waiting jobs, for `SOAK_SECONDS` (240). Every
 * 10 s: the bytes the run's keys hold in Redis (MEMORY USAGE of every key under its
 * prefix, so other clients of the server do not blur it), the waiting jobs, the node
 * process's RSS and heap, jobs done so far. Then the backlog drains and the last sample
 * shows what stays once every tenant is idle (after the engine's stalled sweep has
 * retired their partitions: `stalledIntervalMs` 1 s and a grace of 60 s). Every job
 * enqueued is accounted for: completed, or still waiting at the end (none lost).
 */
import { Redis } from 'ioredis';
import { Fleet } from '../src/fleet.js';
import { BullMqEngine } from '../src/queue/bullmq/bullmq-engine.js';
import { TenantPools } from '../src/tenancy/tenant-pools/tenant-pools.js';
import { benchRegistry, deleteKeys, REDIS_URL, unique } from './support/fleet-setup.js';
import { machine } from './support/harness.js';

const TENANTS = Number(process.env.SOAK_TENANTS ?? 200);
const BACKLOG = Number(process.env.SOAK_BACKLOG ?? 20_000);
const SECONDS = Number(process.env.SOAK_SECONDS ?? 240);
const SAMPLE_MS = 10_000;
const CONCURRENCY = 50;
/** The engine's grace before a quiet partition is forgotten (ready-index.ts ACTIVE_GRACE_MS) and a sweep. */
const IDLE_SETTLE_MS = 65_000;

async function keyBytes(redis: Redis, prefix: string): Promise<{ keys: number; bytes: number }> {
  let cursor = '0';
  let keys = 0;
  let bytes = 0;
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 2000);
    cursor = next;
    const pipeline = redis.pipeline();
    for (const key of batch) pipeline.call('MEMORY', 'USAGE', key, 'SAMPLES', '0');
    for (const [, size] of (await pipeline.exec()) ?? []) bytes += Number(size ?? 0);
    keys += batch.length;
  } while (cursor !== '0');
  return { keys, bytes };
}

export async function main() {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const { registry, slugs, drop } = await benchRegistry(TENANTS, TENANTS);
  const pools = await TenantPools.open({ registry, maxConnections: 20, schemaPoolMaxConnections: 20 });
  const prefix = unique('bench_soak');
  const engine = new BullMqEngine({ connection: REDIS_URL, prefix, stalledIntervalMs: 1000 });
  const fleet = await Fleet.open({ engine, registry, pools });
  const queue = 'soak';
  let enqueued = 0;
  let completed = 0;
  let failed = 0;
  const samples: { seconds: number; redisBytes: number; [other: string]: number }[] = [];
  const started = Date.now();
  const waiting = async () => {
    let total = 0;
    for (let i = 0; i < slugs.length; i += 50)
      for (const counts of await Promise.all(slugs.slice(i, i + 50).map((t) => fleet.counts(queue, t))))
        total += counts.waiting;
    return total;
  };
  const top = async (target: number) => {
    const missing = target - (enqueued - completed - failed);
    for (let done = 0; done < missing; done += 1000) {
      const size = Math.min(1000, missing - done);
      await fleet.enqueueBulk(
        queue,
        Array.from({ length: size }, (_, k) => ({
          tenant: slugs[(enqueued + k) % slugs.length]!,
          name: 'select',
          data: { i: enqueued + k },
        })),
      );
      enqueued += size;
    }
  };
  const sample = async (phase: string) => {
    // With --expose-gc, the heap is read after a collection (what is still referenced).
    (globalThis as { gc?: () => void }).gc?.();
    const { keys, bytes } = await keyBytes(redis, prefix);
    const memory = process.memoryUsage();
    const point = {
      seconds: Math.round((Date.now() - started) / 1000),
      redisKeys: keys,
      redisBytes: bytes,
      waiting: await waiting(),
      completed,
      rssMiB: Math.round(memory.rss / 2 ** 20),
      heapMiB: Math.round(memory.heapUsed / 2 ** 20),
    };
    samples.push(point);
    console.error(phase, JSON.stringify(point));
  };
  try {
    await top(BACKLOG);
    const worker = fleet.worker(queue, async (_job, ctx) => ctx.db!.query('select 1'), {
      concurrency: CONCURRENCY,
      perTenantConcurrency: CONCURRENCY,
      stalledIntervalMs: 1000,
    });
    worker.on('job:completed', () => {
      completed += 1;
    });
    worker.on('job:failed', () => {
      failed += 1;
    });
    await sample('start');
    const end = started + SECONDS * 1000;
    let nextSample = Date.now() + SAMPLE_MS;
    while (Date.now() < end) {
      await top(BACKLOG);
      await new Promise((resolve) => setTimeout(resolve, 200));
      if (Date.now() >= nextSample) {
        await sample('steady');
        nextSample += SAMPLE_MS;
      }
    }
    // Drain, then let the partitions go idle and be retired.
    while (completed + failed < enqueued) await new Promise((resolve) => setTimeout(resolve, 200));
    await sample('drained');
    await new Promise((resolve) => setTimeout(resolve, IDLE_SETTLE_MS));
    await sample('idle');
    await worker.close();
    const lost = enqueued - completed - failed - (await waiting());
    const steady = samples.filter((s) => s.seconds > 60 && s.seconds <= SECONDS).map((s) => s.redisBytes);
    return {
      machine: machine(),
      tenants: TENANTS,
      backlog: BACKLOG,
      seconds: SECONDS,
      jobs: { enqueued, completed, failed, lost },
      steadyRedisBytes: steady.length ? { min: Math.min(...steady), max: Math.max(...steady) } : null,
      samples,
    };
  } finally {
    await fleet.close();
    await pools.close();
    await deleteKeys(redis, prefix);
    await drop();
    redis.disconnect();
  }
}
