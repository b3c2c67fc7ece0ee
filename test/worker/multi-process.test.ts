/**
 * Several worker processes on one store, on each engine that can be shared between
 * processes (BullMQ on one Redis and on the local Redis Cluster with one and with three
 * shards per queue, pg-boss on Postgres; the in-memory engine lives in one process).
 * Each worker is a child process forked from `fixtures/fleet-process.ts` with tsx; its
 * handlers record start and end events in a Redis list, which is the order the test
 * checks.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Fleet } from '../../src/fleet.js';
import type { QueueEngine } from '../../src/queue/engine.js';
import { clusterNodes, deletePrefix, dropSchema, openBullMq, openPgBoss } from '../queue/engines.js';
import { PG_URL, REDIS_URL, uniqueName } from '../support/services.js';
import { until } from '../support/wait.js';
import type { FleetProcessConfig, FleetProcessMessage } from './fixtures/fleet-process.js';
import { openRegistry, type RegistryFixture } from './support.js';

const SCRIPT = fileURLToPath(new URL('./fixtures/fleet-process.ts', import.meta.url));

interface RecordedEvent {
  what: 'start' | 'end';
  tenant: string;
  id: string;
  pid: number;
}

let reg: RegistryFixture;
beforeAll(async () => {
  reg = await openRegistry();
});
afterAll(async () => {
  await reg?.cleanup();
});

/** A store several processes share: the engine's name, a handle on it, and its removal. */
interface SharedStore {
  engine: 'bullmq' | 'pgboss';
  /** The BullMQ prefix or the pg-boss schema. */
  prefix: string;
  /** BullMQ on a Redis Cluster: its seed nodes (the events list stays on REDIS_URL). */
  cluster: string[] | null;
  shards: number;
  open(): QueueEngine;
  drop(): Promise<void>;
}

/** BullMQ on one Redis, or on the local Redis Cluster with `shards` slots per queue. */
function bullMqStore(cluster: boolean, shards: number): SharedStore {
  const nodes = cluster ? clusterNodes() : null;
  const store = openBullMq({
    prefix: uniqueName('fleetmp'),
    shards,
    ...(nodes ? { connection: { cluster: nodes } } : {}),
  });
  return {
    engine: 'bullmq',
    prefix: store.prefix,
    cluster: nodes,
    shards,
    open: () => store.open(),
    drop: () => deletePrefix(store.prefix, nodes ?? undefined),
  };
}

const stores = [
  { name: 'one Redis (bullmq engine)', make: () => bullMqStore(false, 1) },
  { name: 'a Redis Cluster, 1 shard (bullmq engine)', make: () => bullMqStore(true, 1) },
  { name: 'a Redis Cluster, 3 shards (bullmq engine)', make: () => bullMqStore(true, 3) },
  {
    name: 'Postgres (pgboss engine)',
    make(): SharedStore {
      const store = openPgBoss();
      return {
        engine: 'pgboss',
        prefix: store.schema,
        cluster: null,
        shards: 1,
        open: () => store.open(),
        drop: () => dropSchema(store.schema),
      };
    },
  },
];

describe.each(stores)('worker processes on $name', ({ make }) => {
  let redis: Redis;
  let store: SharedStore;
  let prefix: string;
  let queue: string;
  let eventsKey: string;
  let fleet: Fleet;
  const children: ChildProcess[] = [];

  beforeEach(async () => {
    redis = new Redis(REDIS_URL);
    store = make();
    prefix = store.prefix;
    queue = uniqueName('q');
    eventsKey = `${prefix}:test-events`;
    fleet = await Fleet.open({ engine: store.open(), registry: reg.registry });
  });
  afterEach(async () => {
    for (const child of children.splice(0))
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await fleet.close();
    await redis.del(eventsKey);
    await store.drop();
    await redis.quit();
  });

  /** Forks one worker process and resolves once it is pulling jobs. */
  async function spawnWorker(overrides: Partial<FleetProcessConfig> = {}): Promise<ChildProcess> {
    const config: FleetProcessConfig = {
      engine: store.engine,
      redisUrl: REDIS_URL,
      cluster: store.cluster,
      shards: store.shards,
      databaseUrl: PG_URL,
      prefix,
      registryUrl: reg.store.url,
      queue,
      eventsKey,
      concurrency: 4,
      perTenantConcurrency: 4,
      lockDurationMs: 5_000,
      stalledIntervalMs: 1_000,
      shutdownTimeoutMs: 10_000,
      behaviour: 'sleep',
      sleepMs: 20,
      pollIntervalMs: 200,
      ...overrides,
    };
    const child = fork(SCRIPT, [JSON.stringify(config)], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
    children.push(child);
    await new Promise<void>((resolve, reject) => {
      child.once('message', (message: FleetProcessMessage) =>
        message.type === 'ready' ? resolve() : reject(),
      );
      child.once('exit', (code) => reject(new Error(`worker process exited early with ${code}`)));
    });
    return child;
  }

  async function recorded(): Promise<RecordedEvent[]> {
    return (await redis.lrange(eventsKey, 0, -1)).map((line) => JSON.parse(line) as RecordedEvent);
  }

  function exited(child: ChildProcess): Promise<number | null> {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
    return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  it('never runs more than a tenant’s maxConcurrency at once across three processes', async () => {
    const [capped] = await reg.addTenants(1, { maxConcurrency: 2 }, 'mp');
    const jobs = 36;
    // One place per process, so the cap's second place has to go to another process; and
    // jobs only once all three pull, so the first process up cannot run them all alone.
    const oneEach = { perTenantConcurrency: 1 };
    await Promise.all([spawnWorker(oneEach), spawnWorker(oneEach), spawnWorker(oneEach)]);
    await fleet.enqueueBulk(
      queue,
      Array.from({ length: jobs }, (_, i) => ({ tenant: capped!, name: 'n', data: i })),
    );
    await until(async () => (await fleet.counts(queue, capped!)).completed === jobs, 'every job to complete');
    const events = await recorded();
    let live = 0;
    let peak = 0;
    for (const event of events) {
      live += event.what === 'start' ? 1 : -1;
      peak = Math.max(peak, live);
    }
    expect(events.filter((e) => e.what === 'start')).toHaveLength(jobs);
    expect(peak).toBeLessThanOrEqual(2);
    // More than one process took part: the cap held across processes, not within one.
    expect(new Set(events.map((e) => e.pid)).size).toBeGreaterThan(1);
  });

  it('runs the jobs of a SIGKILLed worker elsewhere once their lock expires; nothing is lost', async () => {
    const [tenant] = await reg.addTenants(1, {}, 'mp');
    const jobs = 6;
    await fleet.enqueueBulk(
      queue,
      Array.from({ length: jobs }, (_, i) => ({ tenant: tenant!, name: 'n', data: i })),
    );
    const doomed = await spawnWorker({ behaviour: 'hang', concurrency: 3, lockDurationMs: 1_000 });
    await until(async () => (await recorded()).length === 3, 'the doomed worker to start three jobs');
    doomed.kill('SIGKILL');
    await exited(doomed);
    await spawnWorker({ lockDurationMs: 1_000, stalledIntervalMs: 250 });
    await until(async () => (await fleet.counts(queue, tenant!)).completed === jobs, 'every job to complete');
    const events = await recorded();
    const killedIds = events.filter((e) => e.pid === doomed.pid).map((e) => e.id);
    const ended = events.filter((e) => e.what === 'end');
    expect(killedIds).toHaveLength(3);
    expect(ended.every((e) => e.pid !== doomed.pid)).toBe(true);
    expect(new Set(ended.map((e) => e.id)).size).toBe(jobs);
    for (const id of killedIds) expect(ended.map((e) => e.id)).toContain(id);
    expect(await fleet.counts(queue, tenant!)).toMatchObject({
      completed: jobs,
      failed: 0,
      waiting: 0,
      active: 0,
    });
  });

  it('on SIGTERM stops fetching, finishes running jobs, gives every connection back and exits', async () => {
    const [tenant] = await reg.addTenants(1, {}, 'mp');
    const jobs = 20;
    await fleet.enqueueBulk(
      queue,
      Array.from({ length: jobs }, (_, i) => ({ tenant: tenant!, name: 'n', data: i })),
    );
    const child = await spawnWorker({ concurrency: 2, perTenantConcurrency: 2, sleepMs: 300 });
    await until(async () => (await recorded()).length >= 1, 'a job to start');
    const closed = new Promise<FleetProcessMessage>((resolve) => child.once('message', resolve));
    child.kill('SIGTERM');
    const message = await closed;
    expect(await exited(child)).toBe(0);
    expect(message).toMatchObject({ type: 'closed', running: 0, budgetInUse: 0 });
    const events = await recorded();
    const started = events.filter((e) => e.what === 'start').map((e) => e.id);
    const ended = events.filter((e) => e.what === 'end').map((e) => e.id);
    expect(started.length).toBeGreaterThan(0);
    expect(ended.sort()).toEqual([...started].sort());
    expect(await fleet.counts(queue, tenant!)).toMatchObject({
      completed: started.length,
      waiting: jobs - started.length,
      active: 0,
      failed: 0,
    });
  });

  it('serves two backlogged tenants of weights 3 and 1 at 3:1 (±10%) across two processes', async () => {
    const [heavy] = await reg.addTenants(1, { weight: 3 }, 'mpheavy');
    const [light] = await reg.addTenants(1, { weight: 1 }, 'mplight');
    // Both backlogged through the 1,600 starts measured (light has 400 of its 1,200 by then).
    await fleet.enqueueBulk(
      queue,
      Array.from({ length: 2_400 }, (_, i) => ({ tenant: heavy!, name: 'n', data: i })),
    );
    await fleet.enqueueBulk(
      queue,
      Array.from({ length: 1_200 }, (_, i) => ({ tenant: light!, name: 'n', data: i })),
    );
    const both = { sleepMs: 2, concurrency: 4, perTenantConcurrency: 4 };
    await Promise.all([spawnWorker(both), spawnWorker(both)]);
    await until(async () => (await redis.llen(eventsKey)) >= 3_300, '1,600 starts', { timeoutMs: 120_000 });
    const starts = (await recorded()).filter((e) => e.what === 'start').slice(0, 1_600);
    expect(new Set(starts.map((e) => e.pid)).size).toBe(2);
    // Windows of 400 starts after the first, in which both processes fill their slots.
    for (let from = 400; from < 1_600; from += 400) {
      const window = starts.slice(from, from + 400);
      const ratio =
        window.filter((e) => e.tenant === heavy).length / window.filter((e) => e.tenant === light).length;
      expect(ratio).toBeGreaterThanOrEqual(2.7);
      expect(ratio).toBeLessThanOrEqual(3.3);
    }
  });

  it('loses no readiness: every job enqueued on a drained tenant runs without waiting for a poll', async () => {
    const tenants = await reg.addTenants(3, {}, 'mpready');
    // A poll an hour apart: a job whose readiness signal were lost would sit out the test.
    const hourly = { pollIntervalMs: 3_600_000, sleepMs: 1 };
    await Promise.all([spawnWorker(hourly), spawnWorker(hourly)]);
    let enqueued = 0;
    for (let round = 0; round < 60; round++) {
      const tenant = tenants[round % tenants.length]!;
      await fleet.enqueue(queue, { tenant, name: 'n', data: round });
      enqueued += 1;
      // Wait until the workers drained the tenant, so the next enqueue lands on an empty one.
      await until(async () => (await fleet.counts(queue, tenant)).waiting === 0, 'the tenant to drain');
    }
    const completed = async () => {
      let sum = 0;
      for (const tenant of tenants) sum += (await fleet.counts(queue, tenant)).completed;
      return sum;
    };
    await until(async () => (await completed()) === enqueued, 'every job to complete');
    expect(await completed()).toBe(60);
  });
});
