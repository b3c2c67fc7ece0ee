/**
 * The scheduler's last-tick stores on every engine they run on: memory, Redis and a SQL
 * table on Postgres, MySQL and SQLite. A store only ever moves a schedule forward, also
 * when two writers race, and a SQL store survives a restart (a new store, same database).
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { RedisScheduleStore } from '../../src/scheduler/redis-state-store.js';
import { SqlScheduleStore } from '../../src/scheduler/sql-state-store.js';
import { MemoryScheduleStore, type ScheduleStateStore } from '../../src/scheduler/state-store.js';
import { deletePrefix } from '../queue/engines.js';
import { type DatabaseCase, mysqlCase, postgresCase, type Store, sqliteCase } from '../support/databases.js';
import { REDIS_URL, uniqueName } from '../support/services.js';

const t = (minute: number) => new Date(Date.UTC(2030, 0, 1, 0, minute));

async function checkRaiseOnly(store: ScheduleStateStore): Promise<void> {
  const id = uniqueName('sched');
  expect(await store.lastTick(id)).toBeNull();
  await store.recordTick(id, t(5));
  expect(await store.lastTick(id)).toEqual(t(5));
  await store.recordTick(id, t(3));
  expect(await store.lastTick(id)).toEqual(t(5));
  // Writers racing with every tick from 0 to 19: the latest wins, whatever the order.
  await Promise.all(Array.from({ length: 20 }, (_, m) => store.recordTick(id, t(19 - m))));
  expect(await store.lastTick(id)).toEqual(t(19));
  const other = uniqueName('sched');
  await store.recordTick(other, t(1));
  expect(await store.lastTick(other)).toEqual(t(1));
  expect(await store.lastTick(id)).toEqual(t(19));
}

describe('schedule state stores', () => {
  it('memory', async () => {
    await checkRaiseOnly(new MemoryScheduleStore());
  });

  it('redis', async () => {
    const prefix = uniqueName('fleetstore');
    const redis = new Redis(REDIS_URL);
    try {
      await checkRaiseOnly(new RedisScheduleStore({ redis, prefix }));
      expect(await redis.keys(`${prefix}:#scheduler:last-tick:*`)).toHaveLength(2);
    } finally {
      await redis.quit();
      await deletePrefix(prefix);
    }
  });

  const cases: DatabaseCase[] = [postgresCase(), mysqlCase(), sqliteCase()];
  const stores: Store[] = [];
  afterAll(async () => {
    for (const store of stores) await store.drop();
    for (const engine of cases) await engine.close();
  });

  for (const engine of cases) {
    it(`sql on ${engine.name}, kept across a restart`, async () => {
      const db = await engine.createStore();
      stores.push(db);
      const store = new SqlScheduleStore({ url: db.url });
      await checkRaiseOnly(store);
      await store.recordTick('nightly', t(42));
      await store.close();
      await store.close();
      await expect(store.lastTick('nightly')).rejects.toMatchObject({ code: 'CLOSED' });
      const restarted = new SqlScheduleStore({ url: db.url });
      expect(await restarted.lastTick('nightly')).toEqual(t(42));
      await restarted.close();
    });
  }
});
