/**
 * Redis memory of the BullMQ engine against raw BullMQ (issue 13), in bytes as Redis's
 * own `MEMORY USAGE … SAMPLES 0` reports them, summed key by key under each side's
 * prefix (so other clients of the shared server do not blur it):
 *
 * - per waiting job: raw BullMQ with `JOBS` waiting jobs on one queue, against the
 *   engine with the same jobs spread evenly over `TENANTS` tenants (10 each by default),
 *   the ready index included;
 * - per idle partition: `IDLE_TENANTS` tenants each run `IDLE_JOBS` jobs to the end
 *   (fetch, complete with fetch-next, as the fleet worker does); then each partition's
 *   keys are summed, without the job hashes its logical queue retains (those are the
 *   queue's `keepCompleted`, reported apart), and a raw BullMQ queue that ran the same
 *   number of jobs beside it.
 *
 * Deterministic: one run. `BENCH_JOBS`, `BENCH_TENANTS` scale it down.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { BullMqEngine } from '../src/queue/bullmq/bullmq-engine.js';
import { deleteKeys, REDIS_URL, rawEnqueue, unique } from './support/fleet-setup.js';
import { machine } from './support/harness.js';

const JOBS = Number(process.env.BENCH_JOBS ?? 100_000);
const TENANTS = Number(process.env.BENCH_TENANTS ?? 10_000);
const IDLE_TENANTS = 20;
const IDLE_JOBS = 2_000;
const LOCK = 60_000;

/** MEMORY USAGE of every key under `prefix:`, by key. */
async function sizes(redis: Redis, prefix: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    const pipeline = redis.pipeline();
    for (const key of keys) pipeline.call('MEMORY', 'USAGE', key, 'SAMPLES', '0');
    const replies = (await pipeline.exec()) ?? [];
    for (const [i, key] of keys.entries()) out.set(key, Number(replies[i]?.[1] ?? 0));
  } while (cursor !== '0');
  return out;
}

const sum = (values: Iterable<number>) => [...values].reduce((a, b) => a + b, 0);

/** Bytes by the last segment of the key (the kind of key), for the record. */
function byKind(all: Map<string, number>, prefixLength: number): Record<string, number> {
  const kinds: Record<string, number> = {};
  for (const [key, size] of all) {
    const rest = key.slice(prefixLength);
    // `{Q}:Q.T:<uuid>` (fleet) or `Q:<n>` (raw) is a job hash; else the key's last segment.
    const last = rest.slice(rest.lastIndexOf(':') + 1);
    const kind = /^[0-9a-f-]{36}$|^\d+$/.test(last) ? 'job hash' : last;
    kinds[kind] = (kinds[kind] ?? 0) + size;
  }
  return kinds;
}

async function rawWaiting(redis: Redis) {
  const prefix = unique('mem_raw');
  const queue = new Queue('bench', { connection: redis, prefix });
  await rawEnqueue(queue, JOBS);
  const all = await sizes(redis, prefix);
  await queue.close();
  await deleteKeys(redis, prefix);
  return { bytesPerJob: Math.round(sum(all.values()) / JOBS), byKind: byKind(all, prefix.length + 1) };
}

async function fleetWaiting(redis: Redis) {
  const prefix = unique('mem_fleet');
  const engine = new BullMqEngine({ connection: REDIS_URL, prefix });
  for (let start = 0; start < JOBS; start += 1000)
    await engine.enqueueBulk(
      'bench',
      Array.from({ length: Math.min(1000, JOBS - start) }, (_, k) => ({
        tenant: `t${String((start + k) % TENANTS).padStart(5, '0')}`,
        name: 'noop',
        data: { i: start + k },
      })),
    );
  const all = await sizes(redis, prefix);
  await engine.close();
  await deleteKeys(redis, prefix);
  return {
    tenants: TENANTS,
    bytesPerJob: Math.round(sum(all.values()) / JOBS),
    byKind: byKind(all, prefix.length + 1),
  };
}

async function fleetIdle(redis: Redis) {
  const prefix = unique('mem_idle');
  const engine = new BullMqEngine({ connection: REDIS_URL, prefix });
  const tenants = Array.from({ length: IDLE_TENANTS }, (_, i) => `idle${i}`);
  for (const tenant of tenants) {
    for (let start = 0; start < IDLE_JOBS; start += 1000)
      await engine.enqueueBulk(
        'bench',
        Array.from({ length: 1000 }, (_, k) => ({ tenant, name: 'noop', data: { i: start + k } })),
      );
    let job = await engine.fetch('bench', tenant, 'w', LOCK);
    while (job)
      job = await engine.complete(job, null, { fetchNext: { workerId: 'w', lockDurationMs: LOCK } });
  }
  const all = await sizes(redis, prefix);
  // One shard: a partition's keys start `<P>:{bench}:bench.<tenant>:`, the queue's own `<P>:{bench}:`.
  const head = engine.partitionPrefix('bench', tenants[0]!);
  const finished = await redis.zrange(`${head}:finished`, 0, -1);
  const retained = new Set(finished.map((member) => `${head}:bench.${member}`));
  const perTenant = tenants.map((tenant) =>
    sum(
      [...all]
        .filter(([key]) => key.startsWith(`${head}:bench.${tenant}:`) && !retained.has(key))
        .map(([, s]) => s),
    ),
  );
  const queueLevel = sum(
    [...all]
      .filter(
        ([key]) => retained.has(key) || (key.startsWith(`${head}:`) && !key.startsWith(`${head}:bench.`)),
      )
      .map(([, s]) => s),
  );
  await engine.close();
  await deleteKeys(redis, prefix);
  return {
    tenants: IDLE_TENANTS,
    jobsPerTenant: IDLE_JOBS,
    bytesPerIdlePartition: { min: Math.min(...perTenant), max: Math.max(...perTenant) },
    queueRetainedBytes: queueLevel,
    queueRetainedJobs: retained.size,
  };
}

/** A raw BullMQ queue after it ran IDLE_JOBS jobs: what one idle queue keeps. */
async function rawIdle(redis: Redis) {
  const prefix = unique('mem_raw_idle');
  const { Worker } = await import('bullmq');
  const queue = new Queue('bench', { connection: redis, prefix });
  await rawEnqueue(queue, IDLE_JOBS);
  let done = 0;
  const finished = new Promise<void>((resolve) => {
    const worker = new Worker('bench', async () => {}, {
      connection: {
        host: '127.0.0.1',
        port: Number(new URL(REDIS_URL).port || 6379),
        maxRetriesPerRequest: null,
      },
      prefix,
      concurrency: 10,
    });
    worker.on('completed', () => {
      if (++done === IDLE_JOBS) void worker.close().then(resolve);
    });
  });
  await finished;
  const all = await sizes(redis, prefix);
  await queue.close();
  await deleteKeys(redis, prefix);
  return { jobs: IDLE_JOBS, bytes: sum(all.values()), byKind: byKind(all, prefix.length + 1) };
}

export async function main() {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  try {
    const raw = await rawWaiting(redis);
    console.error('raw waiting', JSON.stringify(raw));
    const fleet = await fleetWaiting(redis);
    console.error('fleet waiting', JSON.stringify(fleet));
    const idle = await fleetIdle(redis);
    console.error('fleet idle', JSON.stringify(idle));
    const rawQueueIdle = await rawIdle(redis);
    return {
      machine: machine(),
      jobs: JOBS,
      waiting: { raw, fleet, ratio: Number((fleet.bytesPerJob / raw.bytesPerJob).toFixed(2)) },
      idle: { fleet: idle, rawQueueAfterSameJobs: rawQueueIdle },
    };
  } finally {
    redis.disconnect();
  }
}
