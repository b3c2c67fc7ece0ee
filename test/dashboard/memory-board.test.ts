/**
 * bull-board over the in-memory engine: the partitions with jobs are listed at
 * `/queues/api/queues` with their counts and jobs, read-only (the engine takes no write
 * from outside a worker, so bull-board answers 405 and the adapter says why).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningDashboard, startDashboard } from '../../dashboard/index.js';
import { MemoryPartitionAdapter } from '../../dashboard/partitions/memory-adapter.js';
import { MemoryEngine } from '../../src/queue/memory/memory-engine.js';
import { UnsupportedError } from '../../src/reporting/errors.js';

interface Listed {
  name: string;
  type: string;
  readOnlyMode: boolean;
  delimiter: string;
  counts: Record<string, number>;
  jobs: { id: string; name: string; data: unknown; delay?: number }[];
}

describe('bull-board on the in-memory engine', () => {
  let engine: MemoryEngine;
  let dashboard: RunningDashboard;

  beforeAll(async () => {
    engine = new MemoryEngine();
    await engine.enqueue('reports', { tenant: 'acme', name: 'first', data: { n: 1 } });
    await engine.enqueue('reports', { tenant: 'acme', name: 'second', data: { n: 2 } });
    await engine.enqueue('reports', { tenant: 'acme', name: 'later', data: { n: 3 }, delayMs: 600_000 });
    await engine.enqueue('reports', { tenant: 'globex', name: 'only', data: null });
    dashboard = await startDashboard({ engine, port: 0, queues: ['reports'] });
  });

  afterAll(async () => {
    await dashboard?.close();
    await engine?.close();
  });

  it("lists the partitions with jobs, their counts and a partition's jobs", async () => {
    const list = (await (await fetch(`${dashboard.url}/queues/api/queues`)).json()) as { queues: Listed[] };
    expect(list.queues.map((q) => q.name).sort()).toEqual(['reports.acme', 'reports.globex']);
    const acme = list.queues.find((q) => q.name === 'reports.acme')!;
    expect(acme).toMatchObject({ type: 'bullmq', readOnlyMode: true, delimiter: '.' });
    expect(acme.counts).toEqual({ active: 0, waiting: 2, delayed: 1, completed: 0, failed: 0 });
    const query = new URLSearchParams({
      activeQueue: 'reports.acme',
      status: 'waiting',
      page: '1',
      jobsPerPage: '10',
    });
    const active = (await (await fetch(`${dashboard.url}/queues/api/queues?${query}`)).json()) as {
      queues: Listed[];
    };
    const jobs = active.queues.find((q) => q.name === 'reports.acme')!.jobs;
    // In the order they will run.
    expect(jobs.map((j) => [j.name, j.data])).toEqual([
      ['first', { n: 1 }],
      ['second', { n: 2 }],
    ]);
    query.set('status', 'delayed');
    const delayed = (await (await fetch(`${dashboard.url}/queues/api/queues?${query}`)).json()) as {
      queues: Listed[];
    };
    expect(delayed.queues.find((q) => q.name === 'reports.acme')!.jobs.map((j) => j.name)).toEqual(['later']);
  });

  it('answers 405 to writes, and the adapter says the memory engine is read-only in bull-board', async () => {
    for (const path of ['reports.acme/retry/failed', 'reports.acme/promote', 'reports.acme/clean/waiting']) {
      const answer = await fetch(`${dashboard.url}/queues/api/queues/${path}`, { method: 'PUT' });
      expect({ path, status: answer.status }).toEqual({ path, status: 405 });
    }
    const adapter = new MemoryPartitionAdapter(engine, 'reports', 'acme');
    await expect(adapter.addJob()).rejects.toBeInstanceOf(UnsupportedError);
    await expect(adapter.promoteAll()).rejects.toThrow(/in-memory engine, which bull-board shows read-only/);
    const [job] = await adapter.getJobs(['waiting']);
    await expect(job!.retry()).rejects.toBeInstanceOf(UnsupportedError);
  });
});
