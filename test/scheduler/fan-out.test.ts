/**
 * Scheduler fan-out: one job per active tenant per tick, exactly once however many
 * schedulers run (two in one process on the memory engine, two processes on BullMQ),
 * tenants added or deactivated between ticks, the catch-up policy after downtime, batch
 * progress, and paging through the registry. Ticks are driven with `tick(at)` or with
 * a seconds-granularity cron; no assertion depends on how long anything took.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Cron } from 'croner';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Fleet } from '../../src/fleet.js';
import { BullMqEngine } from '../../src/queue/bullmq/bullmq-engine.js';
import type { EnqueueJob } from '../../src/queue/engine.js';
import { MemoryEngine } from '../../src/queue/memory/memory-engine.js';
import { FanOutError, FleetError } from '../../src/reporting/errors.js';
import { fanOutBatchId, fanOutJobId } from '../../src/scheduler/fan-out.js';
import { Scheduler } from '../../src/scheduler/scheduler.js';
import { MemoryScheduleStore } from '../../src/scheduler/state-store.js';
import { connect } from '../../src/tenancy/drivers/index.js';
import { OrgRegistry } from '../../src/tenancy/registry/org-registry.js';
import { deletePrefix } from '../queue/engines.js';
import { REDIS_URL, tempDir, uniqueName } from '../support/services.js';
import { until } from '../support/wait.js';
import type { SchedulerProcessConfig, SchedulerProcessMessage } from './fixtures/scheduler-process.js';

const SCRIPT = join(import.meta.dirname, 'fixtures', 'scheduler-process.ts');

let dir: string;
let registry: OrgRegistry;
let fleet: Fleet;
const queue = 'reports';

async function addTenants(count: number, prefix = 't'): Promise<string[]> {
  const slugs: string[] = [];
  for (let i = 0; i < count; i++) {
    const slug = `${prefix}-${String(i).padStart(5, '0')}`;
    await registry.add({ slug, storageMode: 'database', databaseUrl: `sqlite:${join(dir, `${slug}.db`)}` });
    slugs.push(slug);
  }
  return slugs;
}

beforeEach(async () => {
  dir = tempDir('fan-out-');
  registry = await OrgRegistry.open(`sqlite:${join(dir, 'registry.db')}`, { cacheTtlMs: 0 });
  await registry.migrate();
  fleet = await Fleet.open({ engine: new MemoryEngine(), registry });
});

afterEach(async () => {
  await fleet.close();
  await registry.close();
  rmSync(dir, { recursive: true, force: true });
});

const schedule = {
  id: 'nightly-report',
  cron: '0 3 * * *',
  queue,
  name: 'nightly',
  data: { kind: 'summary' },
};

describe('fan-out on the memory engine', () => {
  it('enqueues one job per active tenant with ids derived from (id, tick, tenant)', async () => {
    const slugs = await addTenants(5);
    await using scheduler = fleet.scheduler();
    await scheduler.fanOut(schedule);
    const tick = new Date('2030-01-02T03:00:00Z');
    const result = await scheduler.tick(schedule.id, tick);
    expect(result).toMatchObject({ enqueued: 5, batchId: fanOutBatchId(schedule.id, tick) });
    for (const slug of slugs) {
      const job = await fleet.job(queue, slug, fanOutJobId(schedule.id, tick, slug));
      expect(job).toMatchObject({
        tenant: slug,
        name: 'nightly',
        data: { kind: 'summary' },
        state: 'waiting',
      });
    }
    expect(await fleet.batch(result!.batchId)).toEqual({ total: 5, completed: 0, failed: 0, pending: 5 });
  });

  it('two schedulers ticking at once enqueue each tenant exactly once per tick', async () => {
    const slugs = await addTenants(12);
    // Separate stores: neither scheduler can skip because of the other's record, so
    // only the tick-derived job ids keep the jobs unique.
    await using a = new Scheduler(fleet, { store: new MemoryScheduleStore() });
    await using b = new Scheduler(fleet, { store: new MemoryScheduleStore() });
    await a.fanOut(schedule);
    await b.fanOut(schedule);
    const ticks = [1, 2, 3].map((day) => new Date(Date.UTC(2030, 0, day, 3)));
    for (const tick of ticks) {
      const [ra, rb] = await Promise.all([a.tick(schedule.id, tick), b.tick(schedule.id, tick)]);
      expect(ra?.enqueued).toBe(12);
      expect(rb?.enqueued).toBe(12);
      expect(await fleet.batch(fanOutBatchId(schedule.id, tick))).toMatchObject({ total: 12, pending: 12 });
    }
    for (const slug of slugs) expect((await fleet.counts(queue, slug)).waiting).toBe(ticks.length);
  });

  it('a scheduler arriving after another handled the tick skips it', async () => {
    await addTenants(3);
    const store = new MemoryScheduleStore();
    await using a = new Scheduler(fleet, { store });
    await using b = new Scheduler(fleet, { store });
    await a.fanOut(schedule);
    await b.fanOut(schedule);
    const skips: string[] = [];
    b.on('fanout:skip', ({ reason }) => {
      skips.push(reason);
    });
    const tick = new Date('2030-01-05T03:00:00Z');
    expect(await a.tick(schedule.id, tick)).not.toBeNull();
    expect(await b.tick(schedule.id, tick)).toBeNull();
    expect(skips).toEqual(['already-handled']);
    expect((await fleet.batch(fanOutBatchId(schedule.id, tick))).total).toBe(3);
  });

  it('a tenant added between ticks gets the next tick; a deactivated one does not', async () => {
    const [first, second, third] = await addTenants(3);
    await using scheduler = new Scheduler(fleet);
    await scheduler.fanOut(schedule);
    const t1 = new Date('2030-02-01T03:00:00Z');
    const t2 = new Date('2030-02-02T03:00:00Z');
    await scheduler.tick(schedule.id, t1);
    const [added] = await addTenants(1, 'late');
    await registry.deactivate(second!);
    await scheduler.tick(schedule.id, t2);

    const has = async (slug: string, tick: Date) =>
      (await fleet.job(queue, slug, fanOutJobId(schedule.id, tick, slug))) !== null;
    expect(await has(added!, t1)).toBe(false);
    expect(await has(added!, t2)).toBe(true);
    expect(await has(second!, t1)).toBe(true);
    expect(await has(second!, t2)).toBe(false);
    expect(await has(first!, t2)).toBe(true);
    expect(await has(third!, t2)).toBe(true);
    expect((await fleet.batch(fanOutBatchId(schedule.id, t2))).total).toBe(3);
  });

  it('streams 10,000 tenants in pages of 500 and enqueues each page in bulk', async () => {
    await addTenants(10_001);
    const pages: number[] = [];
    const bulks: number[] = [];
    const target = {
      registry: {
        list: async (options: { active?: boolean; after?: string; limit?: number }) => {
          const page = await registry.list(options);
          pages.push(page.length);
          return page;
        },
      },
      enqueueBulk: async (q: string, jobs: EnqueueJob[]) => {
        bulks.push(jobs.length);
        return fleet.enqueueBulk(q, jobs);
      },
    };
    await using scheduler = new Scheduler(target, { pageSize: 500 });
    await scheduler.fanOut(schedule);
    const tick = new Date('2030-03-01T03:00:00Z');
    const result = await scheduler.tick(schedule.id, tick);
    expect(result).toMatchObject({ enqueued: 10_001, pages: 21 });
    // Never more than a page of tenants read or enqueued at once.
    expect(pages).toEqual([...Array(20).fill(500), 1]);
    expect(bulks).toEqual([...Array(20).fill(500), 1]);
    expect((await fleet.batch(fanOutBatchId(schedule.id, tick))).total).toBe(10_001);
  });

  it('reports batch progress while the fan-out is worked, failures counted apart', async () => {
    const slugs = await addTenants(8);
    const failing = slugs[3]!;
    await using scheduler = new Scheduler(fleet);
    await scheduler.fanOut({ ...schedule, jobOptions: { attempts: 1 } });
    const tick = new Date('2030-04-01T03:00:00Z');
    const { batchId } = (await scheduler.tick(schedule.id, tick))!;
    expect(await fleet.batch(batchId)).toEqual({ total: 8, completed: 0, failed: 0, pending: 8 });

    const seen: Array<{ completed: number; failed: number; pending: number }> = [];
    const worker = fleet.worker(
      queue,
      async (job) => {
        seen.push(await fleet.batch(batchId));
        if (job.tenant === failing) throw new Error('report failed for this tenant');
      },
      { borrowConnection: false, concurrency: 1 },
    );
    await until(async () => (await fleet.batch(batchId)).pending === 0, 'the batch to finish');
    await worker.close();
    expect(await fleet.batch(batchId)).toEqual({ total: 8, completed: 7, failed: 1, pending: 0 });
    // Seen from inside the handlers, one job at a time: pending goes down by one each time.
    expect(seen.map((p) => p.pending)).toEqual([8, 7, 6, 5, 4, 3, 2, 1]);
  });

  it('fans out on its own at every tick of a seconds cron', async () => {
    await addTenants(4);
    await using scheduler = new Scheduler(fleet);
    const done: Array<{ tick: Date; enqueued: number }> = [];
    scheduler.on('fanout:done', ({ tick, enqueued }) => {
      done.push({ tick, enqueued });
    });
    await scheduler.fanOut({ ...schedule, id: 'every-second', cron: '* * * * * *' });
    await until(() => done.length >= 2, 'two ticks');
    await scheduler.close();
    const [t1, t2] = done;
    // Ticks are the pattern's whole seconds, not the moments the timer fired.
    expect(t1!.tick.getMilliseconds()).toBe(0);
    expect(t2!.tick.getMilliseconds()).toBe(0);
    expect(t2!.tick.getTime()).toBeGreaterThan(t1!.tick.getTime());
    expect(done.every((d) => d.enqueued === 4)).toBe(true);
  });
});

describe('a fan-out that fails', () => {
  it('is tried again for the same tick, and enqueues once', async () => {
    const slugs = await addTenants(3);
    let failures = 1;
    const target = {
      registry,
      enqueueBulk: async (q: string, jobs: EnqueueJob[]) => {
        if (failures-- > 0) throw new Error('engine unreachable');
        return fleet.enqueueBulk(q, jobs);
      },
    };
    await using scheduler = new Scheduler(target);
    const events: Array<[string, number]> = [];
    scheduler.on('fanout:error', ({ tick }) => {
      events.push(['error', tick.getTime()]);
    });
    scheduler.on('fanout:done', ({ tick }) => {
      events.push(['done', tick.getTime()]);
    });
    await scheduler.fanOut({ ...schedule, id: 'retried', cron: '* * * * * *' });
    await until(() => events.some(([what]) => what === 'done'), 'a fan-out after the failure');
    await scheduler.close();
    const [first, second] = events;
    expect(first).toEqual(['error', first![1]]);
    // The retry is for the tick that failed, not a later one.
    expect(second).toEqual(['done', first![1]]);
    for (const slug of slugs) {
      expect(await fleet.job(queue, slug, fanOutJobId('retried', new Date(first![1]), slug))).not.toBeNull();
    }
  });
});

describe('a fan-out that fails on a driver error', () => {
  it('reports a FanOutError with the driver error as cause, from tick() and fanout:error', async () => {
    await addTenants(2);
    await using scheduler = fleet.scheduler();
    await scheduler.fanOut(schedule);
    const errors: Error[] = [];
    scheduler.on('fanout:error', ({ error }) => errors.push(error));
    // The registry's table is gone under it: SQLite's own error, raw, is what list() gives.
    const admin = await connect(`sqlite:${join(dir, 'registry.db')}`);
    await admin.query('DROP TABLE fleet_orgs');
    await admin.close();
    const tick = new Date('2030-01-02T03:00:00Z');
    const error = await scheduler.tick(schedule.id, tick).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(FanOutError);
    expect(error).toBeInstanceOf(FleetError);
    expect(error).toMatchObject({ code: 'FAN_OUT_FAILED', scheduleId: schedule.id, tick });
    expect((error as Error).message).toMatch(/no such table/);
    expect((error as Error).cause).not.toBeInstanceOf(FleetError);
    expect((error as Error).cause).toMatchObject({ code: expect.stringMatching(/^SQLITE_ERROR/) });
    expect(errors).toEqual([error]);
    await registry.migrate();
  });
});

describe('catch-up after downtime', () => {
  // Daily, so no live tick can fire while a test runs (a minutely one could, at a minute's turn).
  const daily = { ...schedule, id: 'daily' };
  const DAY = 24 * 60 * 60_000;

  it("'latest' runs one fan-out for the most recent missed tick", async () => {
    await addTenants(4);
    const store = new MemoryScheduleStore();
    const now = new Date();
    const latest = new Cron(daily.cron).previousRuns(1, now)[0]!;
    // The scheduler last ran ten days before the latest tick: ten ticks were missed.
    const lastRun = new Date(latest.getTime() - 10 * DAY);
    await store.recordTick(daily.id, lastRun);
    await using scheduler = new Scheduler(fleet, { store });
    const done: Date[] = [];
    scheduler.on('fanout:done', ({ tick }) => {
      done.push(tick);
    });
    await scheduler.fanOut(daily);
    expect(done).toHaveLength(1);
    const caughtUp = done[0]!;
    expect(caughtUp.getTime()).toBe(latest.getTime());
    expect((await fleet.batch(fanOutBatchId(daily.id, caughtUp))).total).toBe(4);
    // Only one of the missed ticks ran.
    for (let d = 1; d <= 10; d++) {
      const missed = new Date(caughtUp.getTime() - d * DAY);
      expect((await fleet.batch(fanOutBatchId(daily.id, missed))).total).toBe(0);
    }
    expect((await store.lastTick(daily.id))?.getTime()).toBe(caughtUp.getTime());
  });

  it("'none' skips the missed ticks and records the latest as handled", async () => {
    const slugs = await addTenants(4);
    const store = new MemoryScheduleStore();
    await store.recordTick(daily.id, new Date(Date.now() - 10 * DAY));
    await using scheduler = new Scheduler(fleet, { store });
    const skipped: Date[] = [];
    scheduler.on('fanout:skip', ({ tick, reason }) => {
      if (reason === 'catch-up-none') skipped.push(tick);
    });
    await scheduler.fanOut({ ...daily, catchUp: 'none' });
    expect(skipped).toHaveLength(1);
    for (const slug of slugs) expect((await fleet.counts(queue, slug)).waiting).toBe(0);
    expect((await store.lastTick(daily.id))?.getTime()).toBe(skipped[0]!.getTime());
  });

  it('a schedule seen for the first time records a starting point and runs nothing', async () => {
    const slugs = await addTenants(2);
    const store = new MemoryScheduleStore();
    await using scheduler = new Scheduler(fleet, { store });
    await scheduler.fanOut(daily);
    expect(await store.lastTick(daily.id)).not.toBeNull();
    for (const slug of slugs) expect((await fleet.counts(queue, slug)).waiting).toBe(0);
  });
});

describe('a state store that fails', () => {
  it('leaves the schedule unregistered so registering again works', async () => {
    const inner = new MemoryScheduleStore();
    let failures = 1;
    const flaky = {
      lastTick: async (id: string) => {
        if (failures-- > 0) throw new Error('store unreachable');
        return inner.lastTick(id);
      },
      recordTick: (id: string, tick: Date) => inner.recordTick(id, tick),
      close: () => inner.close(),
    };
    await using scheduler = new Scheduler(fleet, { store: flaky });
    await expect(scheduler.fanOut(schedule)).rejects.toThrow(/store unreachable/);
    expect(scheduler.schedules()).toEqual([]);
    const info = await scheduler.fanOut(schedule);
    expect(info.id).toBe(schedule.id);
    expect(scheduler.schedules().map((s) => s.id)).toEqual([schedule.id]);
  });
});

describe('validation', () => {
  it('rejects a bad id, cron, time zone or catch-up policy with the field named', async () => {
    await using scheduler = new Scheduler(fleet);
    await expect(scheduler.fanOut({ ...schedule, id: 'has space' })).rejects.toMatchObject({ field: 'id' });
    await expect(scheduler.fanOut({ ...schedule, cron: 'every day' })).rejects.toMatchObject({
      field: 'cron',
    });
    await expect(scheduler.fanOut({ ...schedule, timezone: 'Mars/Olympus' })).rejects.toMatchObject({
      field: 'timezone',
    });
    await expect(
      scheduler.fanOut({ ...schedule, catchUp: 'all' as unknown as 'latest' }),
    ).rejects.toMatchObject({ field: 'catchUp' });
    await scheduler.fanOut(schedule);
    await expect(scheduler.fanOut(schedule)).rejects.toMatchObject({ field: 'id' });
  });
});

describe('two scheduler processes on BullMQ', () => {
  it('enqueue each tenant exactly once per tick', async () => {
    const slugs = await addTenants(30);
    const prefix = uniqueName('fleetsched');
    const config: SchedulerProcessConfig = {
      redisUrl: REDIS_URL,
      prefix,
      registryUrl: `sqlite:${join(dir, 'registry.db')}`,
      queue,
      scheduleId: 'every-second',
      cron: '* * * * * *',
    };
    const ticks = new Map<number, Set<number>>();
    const children: ChildProcess[] = [];
    const exits: Promise<number | null>[] = [];
    const ready: Promise<void>[] = [];
    for (let i = 0; i < 2; i++) {
      const child = fork(SCRIPT, [JSON.stringify(config)], {
        execArgv: ['--import', 'tsx'],
        stdio: 'inherit',
      });
      children.push(child);
      exits.push(new Promise((resolve) => child.on('close', (code) => resolve(code))));
      ready.push(
        new Promise((resolve) =>
          child.on('message', (message: SchedulerProcessMessage) => {
            if (message.type === 'ready') resolve();
            if (message.type === 'tick') {
              const seen = ticks.get(message.tick) ?? new Set<number>();
              seen.add(i);
              ticks.set(message.tick, seen);
            }
          }),
        ),
      );
    }
    let inspector: Fleet | undefined;
    try {
      await Promise.all(ready);
      // Both processes must have handled several of the same ticks.
      await until(
        () => [...ticks.values()].filter((s) => s.size === 2).length >= 3,
        'three ticks seen by both',
      );
      for (const child of children) child.kill('SIGTERM');
      expect(await Promise.all(exits)).toEqual([0, 0]);

      inspector = await Fleet.open({
        engine: new BullMqEngine({ connection: REDIS_URL, prefix }),
        registry,
      });
      for (const tick of ticks.keys()) {
        expect(await inspector.batch(fanOutBatchId(config.scheduleId, new Date(tick)))).toMatchObject({
          total: slugs.length,
        });
      }
      for (const slug of slugs) {
        expect((await inspector.counts(queue, slug)).waiting).toBe(ticks.size);
      }
    } finally {
      for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
      await inspector?.close();
      await deletePrefix(prefix);
    }
  });
});

describe('two schedulers on one BullMQ prefix at the same tick', () => {
  it('the one whose jobs were all there already logs a skip, not "enqueued"', async () => {
    await addTenants(3);
    const prefix = uniqueName('fleetsched');
    const engine = new BullMqEngine({ connection: REDIS_URL, prefix });
    const shared = await Fleet.open({ engine, registry });
    const logs: Array<{ who: string; msg: string; fields: Record<string, unknown> }> = [];
    const loggerOf = (who: string) => {
      const log = (fields: Record<string, unknown>, msg: string) => logs.push({ who, msg, fields });
      return { info: log, warn: log, error: log } as never;
    };
    // Separate stores: both pass the "already recorded?" check, as two schedulers that
    // read the store before either recorded the tick do.
    const a = new Scheduler(shared, { store: new MemoryScheduleStore(), logger: loggerOf('a') });
    const b = new Scheduler(shared, { store: new MemoryScheduleStore(), logger: loggerOf('b') });
    try {
      await a.fanOut(schedule);
      await b.fanOut(schedule);
      const first = new Date(Date.UTC(2030, 0, 1, 3));
      expect((await a.tick(schedule.id, first))?.added).toBe(3);
      expect((await b.tick(schedule.id, first))?.added).toBe(0);
      // And ticking at once: one MULTI wins the page, the other finds its jobs there.
      const second = new Date(Date.UTC(2030, 0, 2, 3));
      const both = await Promise.all([a.tick(schedule.id, second), b.tick(schedule.id, second)]);
      expect(both.map((r) => r?.added).sort()).toEqual([0, 3]);

      const about = (tick: Date) => logs.filter((l) => l.fields.tick === tick.toISOString());
      for (const tick of [first, second]) {
        const lines = about(tick);
        expect(lines.filter((l) => l.msg === 'fan-out enqueued')).toHaveLength(1);
        expect(lines.filter((l) => l.msg === 'fan-out enqueued')[0]!.fields.enqueued).toBe(3);
        expect(lines.filter((l) => /^fan-out skipped/.test(l.msg))).toHaveLength(1);
      }
      expect(about(first).find((l) => /^fan-out skipped/.test(l.msg))?.who).toBe('b');
      expect(await shared.batch(fanOutBatchId(schedule.id, first))).toMatchObject({ total: 3 });
    } finally {
      await a.close();
      await b.close();
      await shared.close();
      await engine.close();
      await deletePrefix(prefix);
    }
  });
});
