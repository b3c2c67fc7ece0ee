/**
 * Bad input to the scheduler, one row each: `fanOut` options and `Scheduler` options.
 * Every row names the error class and the field it must report, and after each rejected
 * call nothing was enqueued, nothing recorded in the store and no schedule registered.
 * Everything a tick would hand the engine is refused at `fanOut`, not at every tick.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet } from '../../src/fleet.js';
import type { EnqueueJob } from '../../src/queue/engine.js';
import { MemoryEngine } from '../../src/queue/memory/memory-engine.js';
import { ConfigError, FleetError, ValidationError } from '../../src/reporting/errors.js';
import { fanOutJobId } from '../../src/scheduler/fan-out.js';
import { MAX_SCHEDULE_ID_LENGTH } from '../../src/scheduler/fan-out-options.js';
import { type FanOutOptions, Scheduler, type SchedulerOptions } from '../../src/scheduler/scheduler.js';
import { MemoryScheduleStore } from '../../src/scheduler/state-store.js';
import { OrgRegistry } from '../../src/tenancy/registry/org-registry.js';
import { tempDir } from '../support/services.js';

let dir: string;
let registry: OrgRegistry;
let fleet: Fleet;
// The longest slug there can be: the schedule id must leave room for it in the job id.
const LONGEST_SLUG = `t${'x'.repeat(62)}`;
// Every enqueue a scheduler makes goes through here, so a row can check there was none.
const enqueued: EnqueueJob[] = [];
const target = {
  get registry() {
    return fleet.registry;
  },
  get maxDataBytes() {
    return fleet.maxDataBytes;
  },
  enqueueBulk: (queue: string, jobs: EnqueueJob[]) => {
    enqueued.push(...jobs);
    return fleet.enqueueBulk(queue, jobs);
  },
};

beforeAll(async () => {
  dir = tempDir('validation-scheduler-');
  registry = await OrgRegistry.open(`sqlite:${join(dir, 'registry.db')}`, { cacheTtlMs: 0 });
  await registry.migrate();
  await registry.add({
    slug: LONGEST_SLUG,
    storageMode: 'database',
    databaseUrl: `sqlite:${join(dir, 't.db')}`,
  });
  fleet = await Fleet.open({ engine: new MemoryEngine(), registry });
});

afterAll(async () => {
  await fleet.close();
  await registry.close();
  rmSync(dir, { recursive: true, force: true });
});

const valid: FanOutOptions = {
  id: 'nightly',
  cron: '0 3 * * *',
  queue: 'reports',
  name: 'nightly',
  data: {},
};
const circular: Record<string, unknown> = {};
circular.self = circular;

type Row = [label: string, options: unknown, field: string];
const fanOutRows: Row[] = [
  ['options null', null, 'fanOut'],
  ['options a string', 'nightly', 'fanOut'],
  ['id of 95 characters', { ...valid, id: 'x'.repeat(95) }, 'id'],
  ['id one past the longest', { ...valid, id: 'x'.repeat(MAX_SCHEDULE_ID_LENGTH + 1) }, 'id'],
  ['id with a dot', { ...valid, id: 'a.b' }, 'id'],
  ['id with a colon', { ...valid, id: 'a:b' }, 'id'],
  ['id empty', { ...valid, id: '' }, 'id'],
  ['id a number', { ...valid, id: 7 }, 'id'],
  ['queue with a colon', { ...valid, queue: 'a:b' }, 'queue'],
  ['queue with a dot', { ...valid, queue: 'a.b' }, 'queue'],
  ['queue an emoji', { ...valid, queue: '🚀' }, 'queue'],
  ['queue of 10 KB', { ...valid, queue: 'q'.repeat(10_240) }, 'queue'],
  ['queue empty', { ...valid, queue: '' }, 'queue'],
  ['queue missing', { ...valid, queue: undefined }, 'queue'],
  ['name empty', { ...valid, name: '' }, 'name'],
  ['name of 129 characters', { ...valid, name: 'n'.repeat(129) }, 'name'],
  ['name a number', { ...valid, name: 3 }, 'name'],
  ['data a BigInt', { ...valid, data: { n: 10n } }, 'data'],
  ['data circular', { ...valid, data: circular }, 'data'],
  ['data a function', { ...valid, data: () => 1 }, 'data'],
  ['data over maxDataBytes', { ...valid, data: 'x'.repeat(600 * 1024) }, 'data'],
  ['attempts NaN', { ...valid, jobOptions: { attempts: Number.NaN } }, 'jobOptions.attempts'],
  ['attempts 0', { ...valid, jobOptions: { attempts: 0 } }, 'jobOptions.attempts'],
  ['attempts 1.5', { ...valid, jobOptions: { attempts: 1.5 } }, 'jobOptions.attempts'],
  [
    'attempts Infinity',
    { ...valid, jobOptions: { attempts: Number.POSITIVE_INFINITY } },
    'jobOptions.attempts',
  ],
  ['priority 0', { ...valid, jobOptions: { priority: 0 } }, 'jobOptions.priority'],
  ['priority 2^53', { ...valid, jobOptions: { priority: 2 ** 53 } }, 'jobOptions.priority'],
  [
    'backoff type linear',
    { ...valid, jobOptions: { backoff: { type: 'linear', delayMs: 5 } } },
    'jobOptions.backoff.type',
  ],
  [
    'backoff delay -1',
    { ...valid, jobOptions: { backoff: { type: 'fixed', delayMs: -1 } } },
    'jobOptions.backoff.delayMs',
  ],
  ['jobOptions a string', { ...valid, jobOptions: 'fast' }, 'jobOptions'],
  ['jobOptions with a jobId', { ...valid, jobOptions: { jobId: 'mine' } }, 'jobOptions'],
  ['jobOptions with a delay', { ...valid, jobOptions: { delayMs: 10 } }, 'jobOptions'],
  ['cron not a pattern', { ...valid, cron: 'every day' }, 'cron'],
  ['cron a number', { ...valid, cron: 5 }, 'cron'],
  [
    'cron of 7 fields (croner reads a year; the scheduler promises 5 or 6)',
    { ...valid, cron: '0 0 3 * * * 2027' },
    'cron',
  ],
  ['timezone unknown', { ...valid, timezone: 'Mars/Olympus_Mons' }, 'timezone'],
  ['timezone a number', { ...valid, timezone: 1 }, 'timezone'],
  ['catchUp all', { ...valid, catchUp: 'all' }, 'catchUp'],
];

describe('scheduler.fanOut bad input', () => {
  it.each(fanOutRows)('%s → ValidationError(%#)', async (_label, options, field) => {
    const store = new MemoryScheduleStore();
    await using scheduler = new Scheduler(target, { store });
    const error = await scheduler.fanOut(options as FanOutOptions).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ValidationError);
    expect(error).toBeInstanceOf(FleetError);
    expect((error as ValidationError).field).toBe(field);
    expect((error as Error).message).toMatch(/^Expected /);
    expect(scheduler.schedules()).toEqual([]);
    const id = (options as { id?: unknown } | null)?.id;
    if (typeof id === 'string') expect(await store.lastTick(id)).toBeNull();
    expect(enqueued).toEqual([]);
  });

  it('takes the longest schedule id, and its job id with the longest slug fits the engine', async () => {
    const id = 'x'.repeat(MAX_SCHEDULE_ID_LENGTH);
    await using scheduler = new Scheduler(target);
    await scheduler.fanOut({ ...valid, id });
    const tick = new Date('2030-01-02T03:00:00Z');
    expect(await scheduler.tick(id, tick)).toMatchObject({ enqueued: 1 });
    expect(enqueued.map((job) => job.jobId)).toEqual([fanOutJobId(id, tick, LONGEST_SLUG)]);
    enqueued.length = 0;
  });
});

describe('scheduler.tick bad input', () => {
  const rows: [label: string, id: unknown, at: unknown, field: string][] = [
    ['unknown schedule', 'nobody', new Date('2030-01-02T03:00:00Z'), 'scheduleId'],
    ['at not a Date', 'nightly', '2030-01-02', 'at'],
    ['at an invalid Date', 'nightly', new Date('soon'), 'at'],
    ['at past 2286', 'nightly', new Date(1e13), 'at'],
  ];
  it.each(rows)('%s → ValidationError', async (_label, id, at, field) => {
    const store = new MemoryScheduleStore();
    await using scheduler = new Scheduler(target, { store });
    await scheduler.fanOut(valid);
    const error = await scheduler.tick(id as string, at as Date).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).field).toBe(field);
    expect(enqueued).toEqual([]);
  });
});

const optionRows: [label: string, options: unknown, option: string][] = [
  ['pageSize 0', { pageSize: 0 }, 'pageSize'],
  ['pageSize 1.5', { pageSize: 1.5 }, 'pageSize'],
  ['pageSize 10001', { pageSize: 10_001 }, 'pageSize'],
  ['pageSize a string', { pageSize: '5' }, 'pageSize'],
  ['pageSize NaN', { pageSize: Number.NaN }, 'pageSize'],
  ['closeTimeoutMs -1', { closeTimeoutMs: -1 }, 'closeTimeoutMs'],
  ['closeTimeoutMs NaN', { closeTimeoutMs: Number.NaN }, 'closeTimeoutMs'],
];

describe('Scheduler options bad input', () => {
  it.each(optionRows)('%s → ConfigError', (_label, options, option) => {
    let error: unknown;
    try {
      new Scheduler(target, options as SchedulerOptions);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).option).toBe(option);
    expect(enqueued).toEqual([]);
  });
});
