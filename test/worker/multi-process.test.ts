/**
 * Several worker processes on one Redis (issue 4, items 3, 6 and 7), BullMQ only: the
 * in-memory engine lives in one process. Run on the shared Redis and on the local Redis
 * Cluster with one and with three shards per queue. Each worker is a child process forked from
 * `fixtures/fleet-process.ts` with tsx; its handlers record start and end events in a
 * Redis list, which is the order the test checks.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Fleet } from '../../src/fleet.js';
import { BullMqEngine } from '../../src/queue/bullmq/bullmq-engine.js';
import { clusterNodes, deletePrefix } from '../queue/engines.js';
import { REDIS_URL, uniqueName } from '../support/services.js';
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

/** Where the engine of every process keeps its queues (the events list stays on REDIS_URL). */
const TARGETS = [
  { name: 'one Redis', cluster: false, shards: 1 },
  { name: 'a Redis Cluster, 1 shard', cluster: true, shards: 1 },
  { name: 'a Redis Cluster, 3 shards', cluster: true, shards: 3 },
];

describe.each(TARGETS)('worker processes on $name (bullmq engine)', (target) => {
  let redis: Redis;
  let prefix: string;
  let queue: string;
  let eventsKey: string;
  let fleet: Fleet;
  const children: ChildProcess[] = [];

  beforeEach(async () => {
    redis = new Redis(REDIS_URL);
    prefix = uniqueName('fleetmp');
    queue = uniqueName('q');
    eventsKey = `${prefix}:test-events`;
    const connection = target.cluster ? { cluster: clusterNodes() } : REDIS_URL;
    fleet = await Fleet.open({
      engine: new BullMqEngine({ connection, prefix, shards: target.shards }),
      registry: reg.registry,
    });
  });
  afterEach(async () => {
    for (const child of children.splice(0))
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await fleet.close();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== '0');
    await redis.quit();
    if (target.cluster) await deletePrefix(prefix, clusterNodes());
  });

  /** Forks one worker process and resolves once it is pulling jobs. */
  async function spawnWorker(overrides: Partial<FleetProcessConfig> = {}): Promise<ChildProcess> {
    const config: FleetProcessConfig = {
      redisUrl: REDIS_URL,
      cluster: target.cluster ? clusterNodes() : null,
      shards: target.shards,
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
});
