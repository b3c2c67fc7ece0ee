/**
 * Scheduler fan-outs on the fleet page: a process publishes its scheduler's schedules
 * and each one's last fan-out (tick, batch id, jobs enqueued); the dashboard reads the
 * batch's progress from the engine and shows it on `/api/fleet` and the page.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningDashboard, startDashboard } from '../../dashboard/index.js';
import { Fleet } from '../../src/fleet.js';
import { SnapshotPublisher } from '../../src/metrics/snapshot-publisher.js';
import { MemoryEngine } from '../../src/queue/memory/memory-engine.js';
import { fanOutBatchId } from '../../src/scheduler/fan-out.js';
import { OrgRegistry } from '../../src/tenancy/registry/org-registry.js';
import { tempDir } from '../support/services.js';
import { eventually } from '../support/wait.js';

interface FanOutRow {
  id: string;
  queue: string;
  cron: string;
  lastTick: number | null;
  batchId: string | null;
  enqueued: number | null;
  progress: { total: number; completed: number; failed: number; pending: number } | null;
}

describe('scheduler fan-outs on the fleet page', () => {
  let dir: string;
  let registry: OrgRegistry;
  let fleet: Fleet;
  let publisher: SnapshotPublisher;
  let dashboard: RunningDashboard;

  beforeAll(async () => {
    dir = tempDir('dash-fan-outs-');
    registry = await OrgRegistry.open(`sqlite:${join(dir, 'registry.db')}`, { cacheTtlMs: 0 });
    await registry.migrate();
    for (const slug of ['fo-a', 'fo-b', 'fo-c'])
      await registry.add({ slug, storageMode: 'database', databaseUrl: `sqlite:${join(dir, `${slug}.db`)}` });
    fleet = await Fleet.open({ engine: new MemoryEngine(), registry });
    publisher = new SnapshotPublisher({ engine: fleet.engine, periodMs: 100 });
    dashboard = await startDashboard({ engine: fleet.engine, port: 0 });
  });

  afterAll(async () => {
    await dashboard?.close();
    await publisher?.close();
    await fleet?.close();
    await registry?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const fanOuts = async () =>
    ((await (await fetch(`${dashboard.url}/api/fleet`)).json()) as { fanOuts: FanOutRow[] }).fanOuts;

  it("shows each schedule's last batch and its progress as the fleet runs it", async () => {
    await using scheduler = fleet.scheduler();
    publisher.watchScheduler(scheduler);
    await scheduler.fanOut({ id: 'nightly', cron: '0 3 * * *', queue: 'reports', name: 'nightly', data: {} });
    const before = await eventually(async () => {
      const rows = await fanOuts();
      return rows.length === 1 ? rows : null;
    }, 'the schedule on /api/fleet');
    expect(before).toEqual([
      expect.objectContaining({
        id: 'nightly',
        queue: 'reports',
        cron: '0 3 * * *',
        lastTick: null,
        batchId: null,
        progress: null,
      }),
    ]);

    const tick = new Date('2030-01-02T03:00:00Z');
    await scheduler.tick('nightly', tick);
    const batchId = fanOutBatchId('nightly', tick);
    const ticked = await eventually(async () => {
      const [row] = await fanOuts();
      return row?.lastTick === tick.getTime() ? row : null;
    }, 'the fan-out on /api/fleet');
    expect(ticked).toMatchObject({
      batchId,
      enqueued: 3,
      progress: { total: 3, completed: 0, failed: 0, pending: 3 },
    });

    const worker = fleet.worker('reports', async () => {}, { borrowConnection: false });
    try {
      const done = await eventually(async () => {
        const [row] = await fanOuts();
        return row?.progress?.completed === 3 ? row : null;
      }, 'the batch to complete on /api/fleet');
      expect(done.progress).toEqual({ total: 3, completed: 3, failed: 0, pending: 0 });
    } finally {
      await worker.close();
    }
    expect(await (await fetch(`${dashboard.url}/`)).text()).toContain('id="fan-outs"');
  });
});
