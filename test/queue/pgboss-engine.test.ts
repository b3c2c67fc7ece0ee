/**
 * What the pg-boss engine promises beyond the conformance suite: its options, a typed
 * error for an unreachable database, jobs that pg-boss's own API reads, a cap that holds
 * when many handles claim at once, and wake-ups through LISTEN/NOTIFY across handles,
 * counted on the server (pg_stat_activity), not in our own stats.
 */

import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { PgBossEngine, type PgBossEngineOptions } from '../../src/queue/pgboss/pgboss-engine.js';
import { ConfigError, DatabaseConnectionError } from '../../src/reporting/errors.js';
import { PG_URL, uniqueName } from '../support/services.js';
import { until } from '../support/wait.js';
import { dropSchema, openPgBoss } from './engines.js';

const LOCK = 30_000;

describe('PgBossEngine options', () => {
  const rows: Array<[label: string, options: Partial<PgBossEngineOptions>, field: string]> = [
    ['database missing', { database: undefined as never }, 'database'],
    ['database a redis URL', { database: 'redis://127.0.0.1:6379' }, 'database'],
    ['schema with a capital', { schema: 'Jobs' }, 'schema'],
    ['schema too long', { schema: 'x'.repeat(51) }, 'schema'],
    ['maxConnections 0', { maxConnections: 0 }, 'maxConnections'],
    ['keepCompleted 0', { keepCompleted: 0 }, 'keepCompleted'],
    ['closeTimeoutMs -1', { closeTimeoutMs: -1 }, 'closeTimeoutMs'],
  ];
  it.each(rows)('%s: ConfigError naming the option', (_label, options, field) => {
    let error: unknown;
    try {
      new PgBossEngine({ database: PG_URL, ...options });
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toMatchObject({ option: field });
    expect((error as Error).message).toMatch(/^Expected /);
  });
});

describe('PgBossEngine on Postgres', () => {
  let schema: string;
  let engines: PgBossEngine[];
  let admin: pg.Client;
  let open: () => PgBossEngine;

  beforeEach(async () => {
    const store = openPgBoss();
    schema = store.schema;
    engines = [];
    open = () => {
      const engine = store.open({ applicationName: `${schema}-app` });
      engines.push(engine);
      return engine;
    };
    admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
  });
  afterEach(async () => {
    await Promise.all(engines.map((engine) => engine.close()));
    await admin.end();
    await dropSchema(schema);
  });

  it('rejects with DatabaseConnectionError, password redacted, and tries again on the next call', async () => {
    const engine = new PgBossEngine({ database: 'postgres://fleet:s3cret@127.0.0.1:1/nowhere', schema });
    engines.push(engine);
    for (let attempt = 0; attempt < 2; attempt++) {
      const error = await engine.readyTenants('q').catch((thrown: unknown) => thrown);
      expect(error).toBeInstanceOf(DatabaseConnectionError);
      expect((error as Error).message).not.toContain('s3cret');
      expect((error as Error).message).toContain('ECONNREFUSED');
    }
  });

  it("stores jobs where pg-boss's own API reads them, the tenant as singleton_key", async () => {
    const engine = open();
    const queue = uniqueName('q');
    const id = await engine.enqueue(queue, { tenant: 'acme', name: 'render', data: { n: 1 } });
    const boss = await engine.boss();
    const job = await boss.getJobById(queue, id);
    expect(job).toMatchObject({ name: queue, data: { n: 1 }, singletonKey: 'acme', state: 'created' });
    const active = await engine.fetch(queue, 'acme', 'w', LOCK);
    expect((await boss.getJobById(queue, id))?.state).toBe('active');
    await engine.complete(active!, { ok: true });
    expect(await boss.getJobById(queue, id)).toMatchObject({ state: 'completed', output: { ok: true } });
  });

  it('never lets more than the cap run when eight handles claim one tenant at once', async () => {
    const queue = uniqueName('q');
    const handles = Array.from({ length: 8 }, () => open());
    await handles[0]!.setTenantConcurrency(queue, 'acme', 3);
    await handles[0]!.enqueueBulk(
      queue,
      Array.from({ length: 40 }, (_, i) => ({ tenant: 'acme', name: 'n', data: i })),
    );
    for (let round = 0; round < 5; round++) {
      const claimed = await Promise.all(
        handles.map((handle, i) => handle.fetchMany(queue, 'acme', `w${i}`, LOCK, 2)),
      );
      const held = claimed.flat();
      // What the server holds, not what the handles report.
      const { rows } = await admin.query(
        `SELECT count(*)::int AS n FROM ${schema}.job WHERE name = $1 AND state = 'active'`,
        [queue],
      );
      expect(rows[0].n).toBe(3);
      expect(held).toHaveLength(3);
      for (const job of held) await handles[0]!.complete(job, null);
    }
    expect((await handles[0]!.counts(queue, 'acme')).completed).toBe(15);
  });

  it('completes one partition from 40 concurrent callers without a deadlock, trimming as it goes', async () => {
    const engine = new PgBossEngine({ database: PG_URL, schema, maxConnections: 20 });
    engines.push(engine);
    const queue = uniqueName('q');
    for (let i = 0; i < 6000; i += 1000)
      await engine.enqueueBulk(
        queue,
        Array.from({ length: 1000 }, (_, k) => ({ tenant: 'acme', name: 'n', data: i + k })),
      );
    // 40 callers, each completing its job and taking the next in one call, as slots do.
    const failures: string[] = [];
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        let job = await engine.fetch(queue, 'acme', `w${i}`, LOCK);
        while (job) {
          try {
            job = await engine.complete(job, null, {
              fetchNext: { workerId: `w${i}`, lockDurationMs: LOCK },
            });
          } catch (error) {
            failures.push((error as Error).message);
            job = await engine.fetch(queue, 'acme', `w${i}`, LOCK);
          }
        }
      }),
    );
    expect(failures).toEqual([]);
    expect(await engine.counts(queue, 'acme')).toMatchObject({ waiting: 0, active: 0, completed: 6000 });
    // Finished rows were trimmed down towards keepCompleted (100) on the way.
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${schema}.job WHERE name = $1`, [
      queue,
    ]);
    expect(rows[0].n).toBeLessThan(6000);
  });

  it('wakes a waiter on one handle when another enqueues, over one LISTEN connection each', async () => {
    const waiter = open();
    const producer = open();
    const queue = uniqueName('q');
    await waiter.waitForReady(queue, 1); // opens the LISTEN connection
    const woken = waiter.waitForReady(queue, 600_000); // longer than the test: only a NOTIFY ends it
    await producer.enqueue(queue, { tenant: 'acme', name: 'n', data: null });
    await woken;
    const { rows } = await admin.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'`,
      [`${schema}-app:listen`],
    );
    expect(rows[0].n).toBe(1);
  });

  it('wakes a wait at once for a job that fell due after the wait began, its notification gone', async () => {
    const engine = open();
    const queue = uniqueName('q');
    await engine.waitForReady(queue, 1); // opens the LISTEN connection
    // Ready at once; its NOTIFY comes and goes before the wait below begins.
    await engine.enqueue(queue, { tenant: 'acme', name: 'n', data: null });
    await sleep(200);
    // Node's clock: the wait begins at t0 and asks for the next due time 10 s later, so
    // the job fell due after the wait began (the caller's read of the ready tenants, which
    // follows the start of its wait, may have come before).
    const t0 = Date.now();
    let later = false;
    const clock = vi.spyOn(Date, 'now').mockImplementation(() => (later ? t0 + 10_000 : t0));
    try {
      let woken = false;
      const wait = engine.waitForReady(queue, 600_000).then(() => {
        woken = true;
      });
      later = true;
      // Counting only jobs due after the moment of asking, it slept until its 600 s ran out.
      await until(() => woken, 'the wait woken for the job due in between', { timeoutMs: 5_000 });
      await wait;
    } finally {
      clock.mockRestore();
    }
  });
});
