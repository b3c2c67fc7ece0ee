/**
 * The lease protocol of the fleet budget against the real stores, Redis and Postgres, each
 * test under a prefix of its own: the limit under concurrent takers from several
 * "processes" (one FleetBudget each), a dead holder's leases lapsing, renewal keeping
 * them, the fleet-wide FIFO of waiters, what the store holds after every step, and a
 * lost lease state (Redis restarted empty, Postgres tables dropped) fencing new leases
 * until the holders have re-registered theirs.
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { FleetBudgetError } from '../../../src/reporting/errors.js';
import { silentLogger } from '../../../src/reporting/logger.js';
import { ConnectionBudget } from '../../../src/tenancy/pool/budget.js';
import { FleetBudget } from '../../../src/tenancy/pool/fleet-budget/fleet-budget.js';
import type { FleetLease } from '../../../src/tenancy/pool/fleet-budget/lease.js';
import { resolveFleetBudgetOptions } from '../../../src/tenancy/pool/fleet-budget/options.js';
import { ident } from '../../../src/tenancy/pool/fleet-budget/postgres/lease-sql.js';
import { fleetKeys, serverKeys } from '../../../src/tenancy/pool/fleet-budget/redis/lease-scripts.js';
import { startPrivateRedis } from '../../support/private-redis.js';
import { PG_URL, uniqueName } from '../../support/services.js';
import { until } from '../../support/wait.js';
import { type LeaseStoreCase, postgresLeaseStore, redisLeaseStore } from './lease-stores.js';

const SERVER = 'db-a.internal:5432';
const stores = { redis: redisLeaseStore(), postgres: postgresLeaseStore() };
const budgets: FleetBudget[] = [];
const prefixes: Array<[LeaseStoreCase, string]> = [];

afterEach(async () => {
  for (const budget of budgets.splice(0)) await budget.close();
  for (const [store, prefix] of prefixes.splice(0)) await store.cleanup(prefix);
});
afterAll(async () => {
  await stores.redis.close();
  await stores.postgres.close();
});

/** One "process": a FleetBudget with its own connections to the store `option` names. */
function newBudget(
  option: { redis: string } | { postgres: string },
  prefix: string,
  limit: number,
  // 6 s: a step's bound is a third of it, capped at 2 s, which a busy CI machine's
  // Postgres has been seen to need (with 3 s, 1 s bounds read a slow server as gone).
  leaseTtlMs = 6_000,
  acquireTimeoutMs = 10_000,
): FleetBudget {
  const options = resolveFleetBudgetOptions({
    ...option,
    perServer: { [SERVER]: limit },
    leaseTtlMs,
    prefix,
  });
  const budget = new FleetBudget(options, new ConnectionBudget(100), acquireTimeoutMs, silentLogger);
  budgets.push(budget);
  return budget;
}

describe.each(['redis', 'postgres'] as const)('fleet budget leases in %s', (name) => {
  const store = stores[name];

  function newPrefix(): string {
    const prefix = uniqueName('fbtest');
    prefixes.push([store, prefix]);
    return prefix;
  }

  const processBudget = (prefix: string, limit: number, leaseTtlMs?: number, acquireTimeoutMs?: number) =>
    newBudget(store.option(), prefix, limit, leaseTtlMs, acquireTimeoutMs);
  const live = async (prefix: string) => (await store.leaseIds(prefix, SERVER)).length;
  const queued = (prefix: string) => store.queued(prefix, SERVER);

  it('grants exactly the limit to 60 concurrent takers from three processes', async () => {
    const prefix = newPrefix();
    const processes = [processBudget(prefix, 7), processBudget(prefix, 7), processBudget(prefix, 7)];
    const outcomes = await Promise.allSettled(
      Array.from({ length: 60 }, (_, i) => processes[i % 3]!.take(SERVER)),
    );
    const granted = outcomes.filter((o) => o.status === 'fulfilled');
    const refused = outcomes.filter((o) => o.status === 'rejected');
    expect(granted).toHaveLength(7);
    expect(refused).toHaveLength(53);
    for (const o of refused) {
      expect((o as PromiseRejectedResult).reason).toBeInstanceOf(FleetBudgetError);
      expect((o as PromiseRejectedResult).reason.reason).toBe('full');
    }
    expect(await live(prefix)).toBe(7);
    // Released leases leave Redis and may be taken again.
    for (const o of granted) (o as PromiseFulfilledResult<FleetLease>).value.end();
    await until(async () => (await live(prefix)) === 0, 'every lease to be given back');
    await expect(processes[0]!.take(SERVER)).resolves.toBeDefined();
  });

  it('never holds more than the limit while 40 waiters from four processes take turns', async () => {
    const prefix = newPrefix();
    const processes = Array.from({ length: 4 }, () => processBudget(prefix, 3));
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await live(prefix));
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();
    let served = 0;
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const lease = (await processes[i % 4]!.take(SERVER, () => true)) as FleetLease;
        await new Promise((resolve) => setTimeout(resolve, 5));
        served++;
        lease.end();
      }),
    );
    sampling = false;
    await sampler;
    expect(served).toBe(40);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(3);
    await until(async () => (await live(prefix)) === 0 && (await queued(prefix)) === 0, 'an empty budget');
  });

  it('lets the leases of a holder that stopped renewing lapse within the TTL, and renews a live one', async () => {
    const prefix = newPrefix();
    // Long enough that the dead leases are still there when the full budget is checked
    // (with 600 ms, a loaded CI run on node 24 saw one lapse first).
    const ttl = 2_000;
    // A dead process: leases taken in the store directly and never renewed.
    for (const id of ['dead:1', 'dead:2']) await store.takeDead(prefix, SERVER, id, 3, ttl);
    const alive = processBudget(prefix, 3, ttl);
    const mine = await alive.take(SERVER);
    expect(mine).toBeDefined();
    await expect(processBudget(prefix, 3, ttl).take(SERVER)).rejects.toBeInstanceOf(FleetBudgetError);
    const other = processBudget(prefix, 3, ttl);
    // One lease each time a dead one has lapsed (they were taken a moment apart).
    for (const which of ['first', 'second']) {
      await until(
        async () => {
          try {
            await other.take(SERVER);
            return true;
          } catch {
            return false;
          }
        },
        `the ${which} dead lease to lapse`,
        { timeoutMs: 10_000, intervalMs: 20 },
      );
    }
    // Both dead leases are gone; the live process's is still there, renewed.
    await new Promise((resolve) => setTimeout(resolve, 3 * ttl));
    const members = await store.leaseIds(prefix, SERVER);
    expect(members).toContain((mine as FleetLease).id);
    expect(members.filter((m) => m.startsWith('dead:'))).toEqual([]);
    expect(members).toHaveLength(3);
    expect(alive.stats().servers[0]).toMatchObject({ server: SERVER, limit: 3, mine: 1 });
  });

  it('serves waiters from different processes in the order they queued, fleet-wide', async () => {
    const prefix = newPrefix();
    const holderProcess = processBudget(prefix, 1);
    const holder = (await holderProcess.take(SERVER)) as FleetLease;
    const order: string[] = [];
    const waits: Promise<void>[] = [];
    for (const [index, name] of ['first', 'second', 'third', 'fourth'].entries()) {
      const budget = processBudget(prefix, 1);
      waits.push(
        budget
          .take(SERVER, () => true)
          .then((lease) => {
            order.push(name);
            setTimeout(() => lease?.end(), 10);
          }),
      );
      // The next one queues only once this one has its ticket.
      await until(async () => (await queued(prefix)) === index + 1, `${name} to queue`);
    }
    holder.end();
    await Promise.all(waits);
    expect(order).toEqual(['first', 'second', 'third', 'fourth']);
    await until(async () => (await live(prefix)) === 0, 'every lease given back');
  });

  it('withdraws the ticket of a waiter that timed out, so it blocks nobody', async () => {
    const prefix = newPrefix();
    const holder = (await processBudget(prefix, 1).take(SERVER)) as FleetLease;
    const impatient = processBudget(prefix, 1, 3_000, 300);
    const error = await impatient.take(SERVER, () => true).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(FleetBudgetError);
    expect((error as FleetBudgetError).reason).toBe('full');
    await until(async () => (await queued(prefix)) === 0, 'the ticket to be withdrawn');
    holder.end();
    await until(async () => (await live(prefix)) === 0, 'the lease given back');
    await expect(processBudget(prefix, 1).take(SERVER)).resolves.toBeDefined();
  });
});

describe('fleet budget leases after a lost lease state', () => {
  it('grants nothing after Redis restarted empty until the holders have re-registered their leases', async () => {
    let own = await startPrivateRedis();
    const port = Number(new URL(own.url).port);
    const prefix = uniqueName('fbtest');
    // Renewals every 2 s (a third of the TTL): the restart and the first look at the empty
    // Redis come before the holder's next renewal re-registers its leases, even on a busy
    // machine (with 1.5 s, a full suite run once saw them re-registered already).
    const ttl = 6_000;
    const make = () => newBudget({ redis: own.url }, prefix, 2, ttl);
    try {
      const holder = make();
      const other = make();
      const held = [await holder.take(SERVER), await holder.take(SERVER)] as FleetLease[];
      // The other process has seen the lease state before (its take was refused: full).
      await expect(other.take(SERVER)).rejects.toBeInstanceOf(FleetBudgetError);
      await own.stop();
      own = await startPrivateRedis({ port });
      const probe = new Redis(own.url);
      try {
        // The restarted Redis has no lease: without the fence the other process would get one.
        expect(await probe.zcard(serverKeys(prefix, SERVER).leases)).toBe(0);
        await expect(other.take(SERVER)).rejects.toBeInstanceOf(FleetBudgetError);
        expect(await probe.exists(fleetKeys(prefix).fence)).toBe(1);
        await recovers({
          ids: async () => (await probe.zrange(serverKeys(prefix, SERVER).leases, 0, -1)).sort(),
          fenced: async () => (await probe.exists(fleetKeys(prefix).fence)) === 1,
          other,
          held,
        });
      } finally {
        probe.disconnect();
      }
    } finally {
      for (const budget of budgets.splice(0)) await budget.close();
      await own.stop();
    }
  });

  it('grants nothing after the Postgres tables were dropped until the holders have re-registered their leases', async () => {
    const prefix = uniqueName('fbtest');
    prefixes.push([stores.postgres, prefix]);
    // The fence stands for one TTL after the tables are created again: 6 s, so that the
    // look at it comes first even when the DDL is slow (with 1.5 s, CI once saw it lifted).
    const ttl = 6_000;
    const make = () => newBudget({ postgres: PG_URL }, prefix, 2, ttl);
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    try {
      const holder = make();
      const other = make();
      const held = [await holder.take(SERVER), await holder.take(SERVER)] as FleetLease[];
      await expect(other.take(SERVER)).rejects.toBeInstanceOf(FleetBudgetError);
      const epoch = async () =>
        (await admin.query<{ epoch: string }>(`SELECT epoch FROM ${ident(prefix)}.state`)).rows[0]?.epoch;
      const before = await epoch();
      await admin.query(`DROP SCHEMA ${ident(prefix)} CASCADE`);
      // The other process's take recreates the tables (a new epoch) and finds no lease:
      // without the fence it would get one while the holder's two connections are open.
      await expect(other.take(SERVER)).rejects.toBeInstanceOf(FleetBudgetError);
      expect(await epoch()).not.toBe(before);
      const fenced = async () =>
        (
          await admin.query<{ fenced: boolean }>(
            `SELECT fenced_until > clock_timestamp() AS fenced FROM ${ident(prefix)}.state`,
          )
        ).rows[0]?.fenced === true;
      expect(await fenced()).toBe(true);
      await recovers({ ids: () => stores.postgres.leaseIds(prefix, SERVER), fenced, other, held });
    } finally {
      await admin.end();
    }
  });
});

/**
 * After a lost state, with the fence standing: the holder's next renewal puts its leases
 * back (sorted `ids`), the fence lifts, the full server still refuses `other`, and a lease
 * given back is `other`'s to take.
 */
async function recovers(fleet: {
  ids: () => Promise<string[]>;
  fenced: () => Promise<boolean>;
  other: FleetBudget;
  held: FleetLease[];
}): Promise<void> {
  const { ids, fenced, other, held } = fleet;
  const wanted = held
    .map((l) => l.id)
    .sort()
    .join();
  const patient = { timeoutMs: 10_000, intervalMs: 20 };
  await until(async () => (await ids()).join() === wanted, 'the holder to re-register its leases', patient);
  await until(async () => !(await fenced()), 'the fence to lift', patient);
  await expect(other.take(SERVER)).rejects.toBeInstanceOf(FleetBudgetError);
  held[0]!.end();
  await until(async () => (await ids()).length === 1, 'a lease given back');
  await expect(other.take(SERVER)).resolves.toBeDefined();
}
