/**
 * Issue 4, item 9: the Redis connections one engine opens stay under a small, fixed
 * bound however many tenants hold jobs — counted from the server (`CLIENT LIST`, by the
 * client name the engine sets) and from this process's own sockets.
 */
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import type { BullMqBackend } from '../../src/queue/bullmq/bullmq-engine.js';
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
async function exercise(backend: BullMqBackend, queue: string, tenants: string[]): Promise<void> {
  for (let i = 0; i < tenants.length; i += 500)
    await backend.enqueueBulk(
      queue,
      tenants.slice(i, i + 500).map((tenant) => ({ tenant, name: 'n', data: { tenant } })),
    );
  // Opens the subscriber connection.
  await backend.waitForReady(queue, 1);
  const ready = await backend.readyTenants(queue);
  expect(ready.length).toBe(tenants.length);
  for (let i = 0; i < ready.length; i += 50) {
    const jobs = await Promise.all(
      ready.slice(i, i + 50).map((tenant) => backend.fetch(queue, tenant, 'w', LOCK)),
    );
    expect(jobs.every((job) => job !== null)).toBe(true);
    expect(
      await backend.extendLocks(
        jobs.map((job) => job!),
        LOCK,
      ),
    ).toEqual([]);
    await Promise.all(jobs.map((job) => backend.complete(job!, null)));
  }
  await backend.recoverStalled(queue);
}

describe('BullMqBackend Redis connections', () => {
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
    const backend = store.open();
    cleanups.push(async () => {
      await backend.close();
      await deletePrefix(store.prefix);
      await admin.quit();
    });

    await exercise(
      backend,
      'small',
      Array.from({ length: 20 }, (_, i) => `t${i}`),
    );
    const small = await namedConnections(admin, clientName);
    const smallSockets = processRedisSockets() - socketsBefore;

    await exercise(
      backend,
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
    expect((await backend.counts('large', 't1999')).completed).toBe(1);

    await backend.close();
    expect(await namedConnections(admin, clientName)).toBe(0);
  });

  it('opens only a subscriber beside an ioredis instance the caller passes, and leaves it open', async () => {
    const clientName = uniqueName('fleetshared');
    const shared = new Redis(REDIS_URL, { connectionName: clientName, maxRetriesPerRequest: null });
    const store = openBullMq({ clientName, connection: shared });
    const backend = store.open({ connection: shared });
    cleanups.push(async () => {
      await backend.close();
      await deletePrefix(store.prefix);
      await shared.quit();
    });
    await exercise(
      backend,
      'q',
      Array.from({ length: 300 }, (_, i) => `t${i}`),
    );
    expect(await namedConnections(shared, clientName)).toBe(2);
    await backend.close();
    expect(await shared.ping()).toBe('PONG');
    expect(await namedConnections(shared, clientName)).toBe(1);
  });
});
