/**
 * The pg-boss engine coalesces a queue's completions and claims into one `fleet_settle`
 * statement (src/queue/pgboss/settle-batcher.ts). Seen from the server: calls made
 * together travel in one statement on one backend; a statement killed mid-flight fails
 * every caller in it and loses no job; claims merged per tenant hand each caller its own
 * job, in the partition's order, within a cap.
 */
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ActiveJob } from '../../src/queue/engine.js';
import type { PgBossEngine } from '../../src/queue/pgboss/pgboss-engine.js';
import { PG_URL, uniqueName } from '../support/services.js';
import { dropSchema, openPgBoss } from './engines.js';

const LOCK = 30_000;

describe('PgBossEngine settles in batches', () => {
  let schema: string;
  let app: string;
  let engine: PgBossEngine;
  let admin: pg.Client;
  let blocker: pg.Client;
  let queue: string;

  beforeEach(async () => {
    const store = openPgBoss();
    schema = store.schema;
    app = `${schema}-app`;
    engine = store.open({ applicationName: app });
    admin = new pg.Client({ connectionString: PG_URL });
    blocker = new pg.Client({ connectionString: PG_URL });
    await Promise.all([admin.connect(), blocker.connect()]);
    queue = uniqueName('q');
  });
  afterEach(async () => {
    await engine.close();
    await blocker.end().catch(() => {});
    await admin.end();
    await dropSchema(schema);
  });

  /** Enqueues `count` jobs of `tenant` and claims them all, one fetch at a time. */
  async function activeJobs(tenant: string, count: number, lockMs = LOCK): Promise<ActiveJob[]> {
    await engine.enqueueBulk(
      queue,
      Array.from({ length: count }, (_, i) => ({ tenant, name: 'n', data: { i } })),
    );
    const jobs: ActiveJob[] = [];
    for (let i = 0; i < count; i++) jobs.push((await engine.fetch(queue, tenant, 'w', lockMs))!);
    return jobs;
  }

  /** Holds the row lock of one job's row from another session, so a statement completing it waits. */
  async function blockRow(job: ActiveJob): Promise<void> {
    await blocker.query('BEGIN');
    await blocker.query(`SELECT 1 FROM ${schema}.job WHERE name = $1 AND id = $2 FOR UPDATE`, [
      queue,
      (job.lease as { uuid: string }).uuid,
    ]);
  }

  /** The engine's backends running `fleet_settle` now, and whether each waits on a lock. */
  async function settling(): Promise<Array<{ pid: number; waiting: boolean }>> {
    const { rows } = await admin.query<{ pid: number; waiting: boolean }>(
      `SELECT pid, wait_event_type = 'Lock' AS waiting FROM pg_stat_activity
       WHERE application_name = $1 AND state = 'active' AND query LIKE '%fleet_settle%'`,
      [app],
    );
    return rows;
  }

  async function until<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
    for (let i = 0; i < 200; i++) {
      const value = await read();
      if (done(value)) return value;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error('condition not reached in 5 s');
  }

  it('sends 40 completions made together as one statement: none settles before the last row is free', async () => {
    const jobs = await activeJobs('acme', 40);
    await blockRow(jobs[39]!);
    let settled = 0;
    const all = Promise.all(jobs.map((job) => engine.complete(job, { ok: true }).then(() => settled++)));
    const backends = await until(settling, (rows) => rows.some((row) => row.waiting));
    expect(backends).toHaveLength(1);
    // The 39 free rows are in the blocked statement too: nothing has settled.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(settled).toBe(0);
    expect(await engine.counts(queue, 'acme')).toMatchObject({ active: 40, completed: 0 });
    await blocker.query('COMMIT');
    await all;
    expect(await engine.counts(queue, 'acme')).toMatchObject({ active: 0, completed: 40 });
  });

  it('fails every caller of a statement whose backend is killed, and loses none of their jobs', async () => {
    const jobs = await activeJobs('acme', 10, 1_000);
    await blockRow(jobs[0]!);
    const outcomes = Promise.allSettled(jobs.map((job) => engine.complete(job, null)));
    const [backend] = await until(settling, (rows) => rows.some((row) => row.waiting));
    await admin.query('SELECT pg_terminate_backend($1)', [backend!.pid]);
    const results = await outcomes;
    expect(results.every((result) => result.status === 'rejected')).toBe(true);
    await blocker.query('COMMIT');
    // Not one completion landed: the jobs are still active until their locks lapse, then run again.
    expect(await engine.counts(queue, 'acme')).toMatchObject({ active: 10, completed: 0 });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect(await engine.recoverStalled(queue)).toBe(10);
    const again = await Promise.all(jobs.map(() => engine.fetch(queue, 'acme', 'w', LOCK)));
    expect(new Set(again.map((job) => job?.id))).toEqual(new Set(jobs.map((job) => job.id)));
  });

  it('fails only the completion whose result Postgres refuses, not the jobs that finished beside it', async () => {
    const jobs = await activeJobs('acme', 10);
    // JSON allows a NUL character in a string; jsonb does not (SQLSTATE 22P05).
    const results = await Promise.allSettled(
      jobs.map((job, i) => engine.complete(job, i === 4 ? { text: 'a\u0000b' } : { ok: i })),
    );
    expect(results.map((result) => result.status)).toEqual(
      jobs.map((_, i) => (i === 4 ? 'rejected' : 'fulfilled')),
    );
    expect(await engine.counts(queue, 'acme')).toMatchObject({ active: 1, completed: 9 });
  });

  it('sends the completions already asked for before close() ends its connections', async () => {
    const jobs = await activeJobs('acme', 20);
    const completions = Promise.allSettled(jobs.map((job) => engine.complete(job, null)));
    await engine.close();
    expect((await completions).every((result) => result.status === 'fulfilled')).toBe(true);
    const { rows } = await admin.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${schema}.job WHERE name = $1 AND state = 'completed'`,
      [queue],
    );
    expect(rows[0]!.n).toBe(20);
  });

  it('hands claims made together each its own job, in partition order, within a cap, null when none is left', async () => {
    await engine.enqueueBulk(queue, [
      ...Array.from({ length: 3 }, (_, i) => ({ tenant: 'few', name: 'n', data: { i } })),
      ...Array.from({ length: 6 }, (_, i) => ({ tenant: 'many', name: 'n', data: { i } })),
      ...Array.from({ length: 6 }, (_, i) => ({ tenant: 'capped', name: 'n', data: { i } })),
    ]);
    await engine.setTenantConcurrency(queue, 'capped', 2);
    const claim = (tenant: string, count: number) =>
      Array.from({ length: count }, () => engine.fetch(queue, tenant, 'w', LOCK));
    const [few, many, capped] = await Promise.all([
      Promise.all(claim('few', 5)),
      Promise.all(claim('many', 4)),
      Promise.all(claim('capped', 5)),
    ]);
    expect(few.map((job) => (job?.data as { i: number } | undefined)?.i ?? null)).toEqual([
      0,
      1,
      2,
      null,
      null,
    ]);
    expect(many.map((job) => (job!.data as { i: number }).i)).toEqual([0, 1, 2, 3]);
    expect(many.every((job) => job?.tenant === 'many')).toBe(true);
    expect(capped.filter((job) => job !== null)).toHaveLength(2);
    expect(await engine.counts(queue, 'capped')).toMatchObject({ active: 2, waiting: 4 });
  });

  it('writes caps set together in one go, the last asked for a tenant winning, and rewrites no row whose cap is unchanged', async () => {
    const tenants = Array.from({ length: 200 }, (_, i) => `t${i}`);
    await Promise.all([
      ...tenants.map((tenant, i) => engine.setTenantConcurrency(queue, tenant, i % 2 === 0 ? 2 : null)),
      engine.setTenantConcurrency(queue, 't1', 5),
    ]);
    const { rows } = await admin.query<{ tenant: string; cap: number | null }>(
      `SELECT tenant, cap FROM ${schema}.fleet_partition WHERE queue = $1`,
      [queue],
    );
    const caps = new Map(rows.map((row) => [row.tenant, row.cap]));
    expect(caps.size).toBe(200);
    expect(caps.get('t0')).toBe(2);
    expect(caps.get('t1')).toBe(5);
    expect(caps.get('t3')).toBeNull();
    // Setting the same caps again changes no row: no row version is written.
    const before = await admin.query(
      `SELECT xmin::text FROM ${schema}.fleet_partition WHERE queue = $1 ORDER BY tenant`,
      [queue],
    );
    await Promise.all(
      tenants.map((tenant, i) =>
        engine.setTenantConcurrency(queue, tenant, i === 1 ? 5 : i % 2 === 0 ? 2 : null),
      ),
    );
    const after = await admin.query(
      `SELECT xmin::text FROM ${schema}.fleet_partition WHERE queue = $1 ORDER BY tenant`,
      [queue],
    );
    expect(after.rows).toEqual(before.rows);
  });
});
