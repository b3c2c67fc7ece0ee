/**
 * Issue 4, item 9: the Redis connections one engine opens stay under a small, fixed
 * bound however many tenants hold jobs — counted from the server (`CLIENT LIST`, by the
 * client name the engine sets) and from this process's own sockets.
 */
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import type { BullMqEngine } from '../../src/queue/bullmq/bullmq-engine.js';
import { REDIS_URL, uniqueName } from '../support/services.js';
import { deletePrefix, openBullMq } from './engines.js';

const LOCK = 30_000;
const redisPort = Number(new URL(REDIS_URL).port || 6379);

/** Connections the server lists under our client name (and its `:sub` sibling). */
async function namedConnections(admin: Redis, clientName: string): Promise<number> {
  const list = await admin.client('LIST');
  return String(list)
    .split('\n')
    .filter((line) => line.includes(` name=${clientName} `) || line.includes(` name=${clientName}:sub `))
    .length;
}

/** TCP sockets this process holds to the Redis server, whoever opened them. */
function processRedisSockets(): number {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  return handles.filter(
    (handle) =>
      typeof handle === 'object' &&
      handle !== null &&
      (handle as { remotePort?: number }).remotePort === redisPort &&
      !(handle as { destroyed?: boolean }).destroyed,
  ).length;
}

/** Enqueues one job per tenant, drains every tenant through fetch/complete, sweeps locks. */
async function exercise(engine: BullMqEngine, queue: string, tenants: string[]): Promise<void> {
  for (let i = 0; i < tenants.length; i += 500)
    await engine.enqueueBulk(
      queue,
      tenants.slice(i, i + 500).map((tenant) => ({ tenant, name: 'n', data: { tenant } })),
    );
  // Opens the subscriber connection.
  await engine.waitForReady(queue, 1);
  const ready = await engine.readyTenants(queue);
  expect(ready.length).toBe(tenants.length);
  for (let i = 0; i < ready.length; i += 50) {
    const jobs = await Promise.all(
      ready.slice(i, i + 50).map((tenant) => engine.fetch(queue, tenant, 'w', LOCK)),
    );
    expect(jobs.every((job) => job !== null)).toBe(true);
    expect(
      await engine.extendLocks(
        jobs.map((job) => job!),
        LOCK,
      ),
    ).toEqual([]);
    await Promise.all(jobs.map((job) => engine.complete(job!, null)));
  }
  await engine.recoverStalled(queue);
}

describe('BullMqEngine Redis connections', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  it('stays within 2 connections from 20 tenants to 2,000', async () => {
    const admin = new Redis(REDIS_URL);
    const clientName = uniqueName('fleetconn');
    await admin.ping(); // so its socket is in the baseline
    const socketsBefore = processRedisSockets();
    const store = openBullMq({ clientName, maxCachedPartitions: 64 });
    const engine = store.open();
    cleanups.push(async () => {
      await engine.close();
      await deletePrefix(store.prefix);
      await admin.quit();
    });

    await exercise(
      engine,
      'small',
      Array.from({ length: 20 }, (_, i) => `t${i}`),
    );
    const small = await namedConnections(admin, clientName);
    const smallSockets = processRedisSockets() - socketsBefore;

    await exercise(
      engine,
      'large',
      Array.from({ length: 2_000 }, (_, i) => `t${i}`),
    );
    const large = await namedConnections(admin, clientName);
    const largeSockets = processRedisSockets() - socketsBefore;

    // The documented bound: one command connection plus one subscriber.
    expect(small).toBe(2);
    expect(large).toBe(2);
    // Counted from this process's side too, which also sees connections opened without our name.
    expect(smallSockets).toBeLessThanOrEqual(2);
    expect(largeSockets).toBeLessThanOrEqual(2);
    expect((await engine.counts('large', 't1999')).completed).toBe(1);

    await engine.close();
    expect(await namedConnections(admin, clientName)).toBe(0);
  });

  it('opens only a subscriber beside an ioredis instance the caller passes, and leaves it open', async () => {
    const clientName = uniqueName('fleetshared');
    const shared = new Redis(REDIS_URL, { connectionName: clientName, maxRetriesPerRequest: null });
    const store = openBullMq({ clientName, connection: shared });
    const engine = store.open({ connection: shared });
    cleanups.push(async () => {
      await engine.close();
      await deletePrefix(store.prefix);
      await shared.quit();
    });
    await exercise(
      engine,
      'q',
      Array.from({ length: 300 }, (_, i) => `t${i}`),
    );
    expect(await namedConnections(shared, clientName)).toBe(2);
    await engine.close();
    expect(await shared.ping()).toBe('PONG');
    expect(await namedConnections(shared, clientName)).toBe(1);
  });
});
