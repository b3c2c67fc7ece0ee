/**
 * bull-board over the pg-boss engine: the partitions with jobs are listed at
 * `/queues/api/queues` with their counts and jobs, and bull-board's actions go through
 * to the engine's tables: retry every failed job, promote the delayed ones, remove one
 * job, clean the completed ones. What changed is read back from Postgres through the
 * engine (counts, fetch), not from bull-board's answers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningDashboard, startDashboard } from '../../dashboard/index.js';
import { PgBossPartitionAdapter } from '../../dashboard/partitions/pgboss-adapter.js';
import { PgBossBoard } from '../../src/queue/pgboss/board.js';
import type { PgBossEngine } from '../../src/queue/pgboss/pgboss-engine.js';
import { dropSchema, openPgBoss } from '../queue/engines.js';

interface Listed {
  name: string;
  readOnlyMode: boolean;
  counts: Record<string, number>;
  jobs: { id: string; name: string; data: unknown; opts: { jobId?: string } }[];
}

const LOCK = 30_000;

describe('bull-board on the pg-boss engine', () => {
  const store = openPgBoss();
  let engine: PgBossEngine;
  let dashboard: RunningDashboard;

  const listed = async (status?: string): Promise<Listed> => {
    const query = new URLSearchParams({ activeQueue: 'reports.acme', status: status ?? 'latest', page: '1' });
    const body = (await (await fetch(`${dashboard.url}/queues/api/queues?${query}`)).json()) as {
      queues: Listed[];
    };
    return body.queues.find((q) => q.name === 'reports.acme')!;
  };
  const put = (path: string) =>
    fetch(`${dashboard.url}/queues/api/queues/reports.acme/${path}`, { method: 'PUT' });

  beforeAll(async () => {
    engine = store.open();
    await engine.enqueueBulk('reports', [
      { tenant: 'acme', name: 'done', data: { n: 1 } },
      { tenant: 'acme', name: 'broken', data: { n: 2 }, jobId: 'broken-1' },
      { tenant: 'acme', name: 'later', data: { n: 3 }, delayMs: 600_000 },
      { tenant: 'acme', name: 'waiting', data: { n: 4 } },
      { tenant: 'globex', name: 'only', data: null },
    ]);
    await engine.complete((await engine.fetch('reports', 'acme', 'w', LOCK))!, 'ok');
    await engine.fail((await engine.fetch('reports', 'acme', 'w', LOCK))!, new Error('boom'));
    dashboard = await startDashboard({ engine, port: 0, queues: ['reports'] });
  });

  afterAll(async () => {
    await dashboard?.close();
    await engine?.close();
    await dropSchema(store.schema);
  });

  it("lists the partitions with jobs, their counts and a partition's jobs", async () => {
    const list = (await (await fetch(`${dashboard.url}/queues/api/queues`)).json()) as { queues: Listed[] };
    expect(list.queues.map((q) => q.name).sort()).toEqual(['reports.acme', 'reports.globex']);
    const acme = await listed('failed');
    expect(acme.readOnlyMode).toBe(false);
    expect(acme.counts).toEqual({ active: 0, waiting: 1, delayed: 1, completed: 1, failed: 1 });
    expect(acme.jobs.map((j) => [j.name, j.data, j.opts.jobId])).toEqual([['broken', { n: 2 }, 'broken-1']]);
  });

  it('retries the failed job, promotes the delayed one, removes one and cleans the completed past the grace', async () => {
    expect((await put('retry/failed')).status).toBeLessThan(300);
    expect(await engine.counts('reports', 'acme')).toMatchObject({ failed: 0, waiting: 2 });
    expect((await put('promote')).status).toBeLessThan(300);
    expect(await engine.counts('reports', 'acme')).toMatchObject({ delayed: 0, waiting: 3 });
    const waiting = await listed('waiting');
    const doomed = waiting.jobs.find((j) => j.name === 'waiting')!;
    expect((await put(`${doomed.id}/clean`)).status).toBeLessThan(300);
    // bull-board cleans what finished more than 5 s ago: the job completed just now stays.
    expect((await put('clean/completed')).status).toBeLessThan(300);
    expect((await engine.counts('reports', 'acme')).completed).toBe(1);
    const board = new PgBossBoard(engine.options.database, engine.options.schema);
    try {
      await new PgBossPartitionAdapter(engine, board, 'reports', 'acme', false).clean('completed', 0);
    } finally {
      await board.close();
    }
    expect(await engine.counts('reports', 'acme')).toEqual({
      waiting: 2,
      active: 0,
      delayed: 0,
      completed: 0,
      failed: 0,
    });
    // The retried job runs again, its attempts afresh.
    const names: string[] = [];
    for (
      let job = await engine.fetch('reports', 'acme', 'w', LOCK);
      job;
      job = await engine.fetch('reports', 'acme', 'w', LOCK)
    ) {
      names.push(job.name);
      if (job.name === 'broken') expect(job.attempt).toBe(1);
    }
    expect(names.sort()).toEqual(['broken', 'later']);
  });
});
