/**
 * Fleet snapshots: a process publishes its job counters, pools and identity into the
 * engine about once a period, and a reader sums the live ones, dropping a process whose
 * heartbeat is older than three periods.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet } from '../../src/fleet.js';
import { aggregate, liveSnapshots } from '../../src/metrics/fleet-aggregate.js';
import { RedisSnapshotStore } from '../../src/metrics/redis-snapshot-store.js';
import type { ProcessSnapshot } from '../../src/metrics/snapshot.js';
import { SnapshotPublisher } from '../../src/metrics/snapshot-publisher.js';
import { snapshotStoreFor } from '../../src/metrics/store-for-engine.js';
import { BullMqEngine } from '../../src/queue/bullmq/bullmq-engine.js';
import { MemoryEngine } from '../../src/queue/memory/memory-engine.js';
import { ConfigError } from '../../src/reporting/errors.js';
import { deletePrefix, dropSchema, openPgBoss } from '../queue/engines.js';
import { REDIS_URL, uniqueName } from '../support/services.js';
import { until } from '../support/wait.js';
import { openRegistry, type RegistryFixture } from '../worker/support.js';

const WITHIN = { timeoutMs: 20_000, intervalMs: 20 };

describe('fleet snapshots', () => {
  let reg: RegistryFixture;
  let tenants: string[] = [];
  const prefix = uniqueName('fleet-snap');
  const pgboss = openPgBoss();

  beforeAll(async () => {
    reg = await openRegistry();
    tenants = await reg.addTenants(4, {}, 'snap');
  });

  afterAll(async () => {
    await deletePrefix(prefix);
    await dropSchema(pgboss.schema);
    await reg?.cleanup();
  });

  for (const engineName of ['bullmq', 'pgboss', 'memory'] as const) {
    it(`publishes counters, pools and identity into the ${engineName} engine, and removes them on close`, async () => {
      const engine =
        engineName === 'bullmq'
          ? new BullMqEngine({ connection: REDIS_URL, prefix })
          : engineName === 'pgboss'
            ? pgboss.open()
            : new MemoryEngine();
      const fleet = await Fleet.open({ engine, registry: reg.registry, pools: { maxConnections: 3 } });
      const publisher = new SnapshotPublisher({ engine, pools: fleet.pools, periodMs: 100, topTenants: 2 });
      const reader = snapshotStoreFor(engine);
      try {
        const queue = uniqueName('q');
        publisher.watch(
          fleet.worker(queue, async (job, ctx) => {
            await ctx.db!.query('select 1');
            if ((job.data as { fail: boolean }).fail) throw new Error('planned');
          }),
        );
        const jobs = tenants.flatMap((tenant, i) =>
          Array.from({ length: 3 + i }, (_, j) => ({
            tenant,
            name: 'n',
            data: { fail: j === 0 && i === 0 },
          })),
        );
        await fleet.enqueueBulk(queue, jobs);
        const mine = async () => (await reader.list()).find((s) => s.id === publisher.identity.id);
        await until(
          async () => {
            const s = await mine();
            return (
              s !== undefined &&
              (s.queues[queue]?.completed ?? 0) + (s.queues[queue]?.failed ?? 0) === jobs.length
            );
          },
          'a snapshot counting every job',
          WITHIN,
        );
        const snapshot = (await mine())!;
        expect(snapshot.queues[queue]).toMatchObject({ completed: jobs.length - 1, failed: 1, retried: 0 });
        expect(snapshot.queues[queue]!.durations.count).toBe(jobs.length - 1);
        // Top N by activity: the two tenants with the most jobs, no more.
        expect(snapshot.tenants.map((t) => t.tenant)).toEqual([tenants[3], tenants[2]]);
        expect(snapshot.tenants[0]).toMatchObject({ queue, completed: 6, failed: 0 });
        expect(snapshot).toMatchObject({ pid: process.pid, periodMs: 100, running: 0 });
        expect(snapshot.pools!.budget.max).toBe(3);
        expect(snapshot.pools!.counters.acquires).toBeGreaterThanOrEqual(1);
        expect(JSON.stringify(snapshot)).not.toContain('postgres://');
        await publisher.close();
        expect(await mine()).toBeUndefined();
      } finally {
        await publisher.close();
        await reader.close();
        await fleet.close();
      }
    });
  }

  it('keeps a snapshot on Redis only for its TTL, and prunes the index of the expired', async () => {
    const store = new RedisSnapshotStore({ connection: REDIS_URL, prefix });
    const redis = new Redis(REDIS_URL);
    try {
      const base = { host: 'h', pid: 1, version: '0', startedAt: Date.now(), periodMs: 100 };
      const snapshot = (id: string): ProcessSnapshot => ({
        ...base,
        id,
        heartbeatAt: Date.now(),
        queues: {},
        tenants: [],
        running: 0,
        pools: null,
        prewarm: null,
      });
      await store.publish(snapshot('short'), 150);
      await store.publish(snapshot('long'), 60_000);
      expect((await store.list()).map((s) => s.id).sort()).toEqual(['long', 'short']);
      await until(
        async () => (await redis.exists(`${prefix}:{#fleet}:process:short`)) === 0,
        'expiry',
        WITHIN,
      );
      expect((await store.list()).map((s) => s.id)).toEqual(['long']);
      expect(await redis.zrange(`${prefix}:{#fleet}:processes`, 0, -1)).toEqual(['long']);
    } finally {
      await store.close();
      await redis.quit();
    }
  });

  it('sums the live processes and drops one whose heartbeat is older than three periods', () => {
    const now = 1_000_000;
    const pools = (max: number, inUse: number) => ({
      budget: { max, open: inUse, inUse, idle: 0, waiting: 1 },
      pools: [
        {
          slug: 'a',
          mode: 'schema' as const,
          kind: 'postgres' as const,
          open: inUse,
          inUse,
          idle: 0,
          waiting: 1,
          lastUsedAt: 0,
        },
      ],
      counters: {
        acquires: 1,
        connects: 1,
        connectFailures: 0,
        poolEvictions: 2,
        reclaims: 3,
        timeouts: 0,
        recycles: 0,
      },
      acquireWaitMs: { p50: 1, p99: 5 * max, max: 9 },
      breakers: [],
      fleet: {
        process: `p${max}`,
        reachable: true,
        servers: [{ server: 'pg-a:5432', limit: 24, leases: 7, mine: inUse + max, waiting: 1 }],
      },
    });
    const proc = (id: string, age: number, max: number): ProcessSnapshot => ({
      id,
      host: 'h',
      pid: max,
      version: '0',
      startedAt: 0,
      heartbeatAt: now - age,
      periodMs: 1000,
      queues: {
        q: {
          completed: max,
          failed: 1,
          retried: 0,
          running: 1,
          durations: { counts: new Array(13).fill(0), sumMs: 0, count: 0 },
          waitMs: { p50: 0, p99: 0 },
        },
      },
      tenants: [],
      running: 1,
      pools: pools(max, 1),
      prewarm: null,
    });
    const snapshots = [proc('a', 0, 4), proc('b', 2_999, 6), proc('dead', 3_001, 100)];
    expect(liveSnapshots(snapshots, now).map((s) => s.id)).toEqual(['a', 'b']);
    const fleet = aggregate(snapshots, now);
    expect(fleet.processes.map((p) => p.id)).toEqual(['a', 'b']);
    expect(fleet.queues.q).toMatchObject({ completed: 10, failed: 2, running: 2 });
    expect(fleet.pools.budget).toEqual({ max: 10, open: 2, inUse: 2, idle: 0, waiting: 2 });
    expect(fleet.pools.counters).toMatchObject({ poolEvictions: 4, reclaims: 6 });
    expect(fleet.pools.acquireWaitMs.p99).toBe(30);
    expect(fleet.pools.rows).toHaveLength(2);
    // The fleet budget per server: the live processes' leases summed (1+4 and 1+6).
    expect(fleet.pools.servers).toEqual([{ server: 'pg-a:5432', limit: 24, leases: 12, waiting: 2 }]);
  });

  it('rejects a bad period with a ConfigError that says what it got', () => {
    expect(() => new SnapshotPublisher({ engine: new MemoryEngine(), periodMs: 1.5 })).toThrow(ConfigError);
    expect(() => new SnapshotPublisher({ engine: new MemoryEngine(), periodMs: 1.5 })).toThrow(/got 1.5/);
  });
});
