/**
 * The Postgres lease store on a busy server: a burst of takes from each process while
 * every step is slow (a trigger sleeps in each statement on the lease table) is answered
 * in full, not read as an outage, because a step's time bound starts when it is sent; and
 * a process starting beside steps in flight runs no DDL that would stall them. Plus the
 * one-at-a-time queue itself.
 */
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { FleetBudgetError } from '../../../src/reporting/errors.js';
import { silentLogger } from '../../../src/reporting/logger.js';
import { ConnectionBudget } from '../../../src/tenancy/pool/budget.js';
import { NoAnswerError } from '../../../src/tenancy/pool/fleet-budget/bounded.js';
import { FleetBudget } from '../../../src/tenancy/pool/fleet-budget/fleet-budget.js';
import type { FleetLease } from '../../../src/tenancy/pool/fleet-budget/lease.js';
import { resolveFleetBudgetOptions } from '../../../src/tenancy/pool/fleet-budget/options.js';
import { ident } from '../../../src/tenancy/pool/fleet-budget/postgres/lease-sql.js';
import { SerialSteps } from '../../../src/tenancy/pool/fleet-budget/postgres/serial-steps.js';
import { PG_URL, uniqueName, withDatabase } from '../../support/services.js';
import { postgresLeaseStore } from './lease-stores.js';

const SERVER = 'db-b.internal:5432';
const store = postgresLeaseStore();
const admin = new pg.Pool({ connectionString: PG_URL, max: 2 });
const budgets: FleetBudget[] = [];
const prefixes: string[] = [];

afterEach(async () => {
  for (const budget of budgets.splice(0)) await budget.close();
  for (const prefix of prefixes.splice(0)) await store.cleanup(prefix);
});
afterAll(async () => {
  await store.close();
  await admin.end();
});

/** One "process" with the default lease TTL of 3 s: each step is bounded by 1 s. */
function processBudget(prefix: string, limit: number): FleetBudget {
  const options = resolveFleetBudgetOptions({ postgres: PG_URL, perServer: { [SERVER]: limit }, prefix });
  const budget = new FleetBudget(options, new ConnectionBudget(100), 10_000, silentLogger);
  budgets.push(budget);
  return budget;
}

function newPrefix(): string {
  const prefix = uniqueName('fbslow');
  prefixes.push(prefix);
  return prefix;
}

describe('the Postgres lease store on a busy server', () => {
  it('answers every take of a burst from three processes while each step takes 50 ms', async () => {
    const prefix = newPrefix();
    const processes = [processBudget(prefix, 7), processBudget(prefix, 7), processBudget(prefix, 7)];
    // Each process has made its schema check; then every statement on the leases runs 50 ms.
    for (const budget of processes) (await budget.take(SERVER))!.end();
    const s = ident(prefix);
    await admin.query(`
      CREATE FUNCTION ${s}.slow() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_sleep(0.05); RETURN NULL; END $$;
      CREATE TRIGGER slow AFTER DELETE ON ${s}.leases FOR EACH STATEMENT EXECUTE FUNCTION ${s}.slow();`);
    // 60 takes in a row cost 3 s, three bounds; no take may count the others' turns as its own.
    const outcomes = await Promise.allSettled(
      Array.from({ length: 60 }, (_, i) => processes[i % 3]!.take(SERVER)),
    );
    const reasons = outcomes.map((o) =>
      o.status === 'fulfilled' ? 'granted' : (o.reason as FleetBudgetError).reason,
    );
    expect(reasons.filter((r) => r === 'granted')).toHaveLength(7);
    expect(reasons.filter((r) => r === 'full')).toHaveLength(53);
    for (const o of outcomes) if (o.status === 'fulfilled') (o.value as FleetLease).end();
  });

  it('lets a process start while another holds a step open on the lease tables', async () => {
    const prefix = newPrefix();
    (await processBudget(prefix, 5).take(SERVER))!.end();
    // A step in flight: a transaction that has written to the tickets and leases tables.
    const holder = await admin.connect();
    let open = true;
    try {
      await holder.query('BEGIN');
      await holder.query(`DELETE FROM ${ident(prefix)}.tickets WHERE false`);
      await holder.query(`DELETE FROM ${ident(prefix)}.leases WHERE false`);
      // Ends the holder in any case, after the store's own bound on creating the schema.
      const release = setTimeout(() => {
        open = false;
        void holder.query('COMMIT');
      }, 20_000);
      const lease = await processBudget(prefix, 5)
        .take(SERVER)
        .finally(() => clearTimeout(release));
      expect(lease).toBeDefined();
      // Answered while the other transaction was still open: the new process waited on nothing.
      expect(open).toBe(true);
      lease!.end();
    } finally {
      if (open) await holder.query('COMMIT');
      holder.release();
    }
  }, 30_000);
});

describe('the Postgres lease store in a schema a DBA created', () => {
  it('runs with CREATE on the schema only, not owning it', async () => {
    const name = uniqueName('fbown');
    await admin.query(`CREATE ROLE ${name} LOGIN`);
    await admin.query(`CREATE DATABASE ${name}`);
    const dba = new pg.Client({ connectionString: withDatabase(PG_URL, name) });
    await dba.connect();
    try {
      await dba.query(`CREATE SCHEMA ${name}; GRANT USAGE, CREATE ON SCHEMA ${name} TO ${name}`);
      const asRole = new URL(withDatabase(PG_URL, name));
      asRole.username = name;
      asRole.password = '';
      const url = asRole.toString();
      const options = resolveFleetBudgetOptions({ postgres: url, perServer: { [SERVER]: 2 }, prefix: name });
      for (let run = 0; run < 2; run++) {
        // The first process creates the tables and functions, the second finds them.
        const budget = new FleetBudget(options, new ConnectionBudget(10), 5_000, silentLogger);
        try {
          const lease = await budget.take(SERVER);
          expect(lease).toBeDefined();
          lease!.end();
        } finally {
          await budget.close();
        }
      }
    } finally {
      await dba.end();
      await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
      await admin.query(`DROP ROLE ${name}`);
    }
  });
});

describe('SerialSteps', () => {
  const noAnswer = (error: unknown) => error instanceof NoAnswerError;

  it('runs the steps of a key one at a time, in order, and of other keys beside them', async () => {
    const steps = new SerialSteps(noAnswer);
    const log: string[] = [];
    const step = (name: string, gate: Promise<void>) => async () => {
      log.push(`start ${name}`);
      await gate;
      log.push(`end ${name}`);
      return name;
    };
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const a1 = steps.run('a', step('a1', gate));
    const a2 = steps.run('a', step('a2', Promise.resolve()));
    const b1 = steps.run('b', step('b1', Promise.resolve()));
    await b1;
    expect(log).toEqual(['start a1', 'start b1', 'end b1']);
    open();
    expect(await Promise.all([a1, a2])).toEqual(['a1', 'a2']);
    expect(log).toEqual(['start a1', 'start b1', 'end b1', 'end a1', 'start a2', 'end a2']);
  });

  it('fails the steps queued behind one that got no answer with its error, and runs a step asked after it', async () => {
    const steps = new SerialSteps(noAnswer);
    const failure = new NoAnswerError('Postgres', 1000);
    let ran = 0;
    const first = steps.run('a', async () => {
      ran++;
      await new Promise((resolve) => setTimeout(resolve, 10));
      throw failure;
    });
    const queued = [1, 2, 3].map(() =>
      steps.run('a', async () => {
        ran++;
      }),
    );
    for (const promise of [first, ...queued]) await expect(promise).rejects.toBe(failure);
    expect(ran).toBe(1);
    await expect(steps.run('a', async () => 'later')).resolves.toBe('later');
  });

  it('runs the steps queued behind one that failed otherwise (its connection was killed)', async () => {
    const steps = new SerialSteps(noAnswer);
    const killed = Object.assign(new Error('terminating connection due to administrator command'), {
      code: '57P01',
    });
    const first = steps.run('a', async () => {
      await new Promise((resolve) => setTimeout(resolve, 10));
      throw killed;
    });
    const queued = [1, 2, 3].map((n) => steps.run('a', async () => n));
    await expect(first).rejects.toBe(killed);
    expect(await Promise.all(queued)).toEqual([1, 2, 3]);
  });
});
