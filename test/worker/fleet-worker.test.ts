/**
 * The FleetWorker and Fleet behaviour of issue 4, written once and run over every queue
 * engine: enqueue checks, the handler's context, retries, delays and priorities, caps
 * and graceful close.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ActiveJob } from '../../src/queue/engine.js';
import {
  ClosedError,
  ConfigError,
  TenantInactiveError,
  UnknownTenantError,
  ValidationError,
} from '../../src/reporting/errors.js';
import type { TenantConnection } from '../../src/tenancy/tenant-pools/tenant-connection.js';
import { TenantPools } from '../../src/tenancy/tenant-pools/tenant-pools.js';
import { FleetWorker } from '../../src/worker/fleet-worker.js';
import { UnrecoverableError } from '../../src/worker/unrecoverable-error.js';
import { engines, memoryEngine } from '../queue/engines.js';
import { until } from '../support/wait.js';
import {
  type FleetFixture,
  garbageCollector,
  gate,
  openFleet,
  openRegistry,
  type RegistryFixture,
} from './support.js';

let reg: RegistryFixture;
let pools: TenantPools;
beforeAll(async () => {
  reg = await openRegistry();
  pools = await TenantPools.open({ registry: reg.registry, maxConnections: 6, schemaPoolMaxConnections: 6 });
});
afterAll(async () => {
  await pools?.close();
  await reg?.cleanup();
});

/**
 * Started worker on `fleet` (orgs read again every 200 ms) that records the tenants whose
 * jobs it ran, the tenants it skipped (`tenant:reason`) and the errors it reported.
 */
function recordingWorker(fleet: FleetFixture['fleet'], queue: string) {
  const ran: string[] = [];
  const skipped: string[] = [];
  const errors: string[] = [];
  const worker = fleet.worker(queue, async (job) => void ran.push(job.tenant), {
    borrowConnection: false,
    autorun: false,
    orgRefreshMs: 200,
  });
  worker.on('tenant:skipped', ({ tenant, reason }) => skipped.push(`${tenant}:${reason}`));
  worker.on('error', ({ during }) => errors.push(during));
  worker.run();
  return { worker, ran, skipped, errors };
}

/**
 * Puts `intercept` in front of the engine's `setTenantConcurrencies`: it sees each call's
 * caps as sorted `slug=cap` strings and answers in the engine's place, or returns
 * undefined to let the engine write them.
 */
function interceptCaps(
  fleet: FleetFixture['fleet'],
  intercept: (written: string[]) => Promise<void> | undefined,
): void {
  const engine = fleet.engine;
  const setCaps = engine.setTenantConcurrencies.bind(engine);
  engine.setTenantConcurrencies = async (queue, caps) =>
    intercept([...caps].map(([slug, cap]) => `${slug}=${cap}`).sort()) ?? setCaps(queue, caps);
}

describe.each(engines)('FleetWorker on the $name engine', (engine) => {
  let fx: FleetFixture;
  beforeEach(async () => {
    fx = await openFleet(engine, reg.registry, pools);
  });
  afterEach(async () => {
    await fx.cleanup();
  });

  it('refuses jobs of unknown or deactivated tenants and bad input, writing nothing', async () => {
    const { fleet, queue } = fx;
    const [acme, gone] = await reg.addTenants(2);
    await reg.registry.deactivate(gone!);
    await expect(fleet.enqueue(queue, { tenant: 'no-such-tenant', name: 'n', data: {} })).rejects.toThrow(
      UnknownTenantError,
    );
    await expect(fleet.enqueue(queue, { tenant: gone!, name: 'n', data: {} })).rejects.toThrow(
      TenantInactiveError,
    );
    const bigint = fleet.enqueue(queue, { tenant: acme!, name: 'n', data: { n: 1n } });
    await expect(bigint).rejects.toMatchObject({ field: 'data' });
    const huge = fleet.enqueue(queue, { tenant: acme!, name: 'n', data: 'x'.repeat(fleet.maxDataBytes) });
    await expect(huge).rejects.toThrow(/at most 524288 bytes/);
    await expect(fleet.enqueue('bad queue!', { tenant: acme!, name: 'n', data: {} })).rejects.toMatchObject({
      field: 'queue',
    });
    await expect(fleet.enqueue(queue, { tenant: acme!, name: '', data: {} })).rejects.toThrow(
      ValidationError,
    );
    // One bad job in a bulk: nothing of the bulk is written.
    const bulk = fleet.enqueueBulk<unknown>(queue, [
      { tenant: acme!, name: 'ok', data: 1 },
      { tenant: acme!, name: 'ok', data: () => 1 },
    ]);
    await expect(bulk).rejects.toThrow(/Job 1 of 2/);
    const mixed = fleet.enqueueBulk(queue, [
      { tenant: acme!, name: 'ok', data: 1 },
      { tenant: gone!, name: 'ok', data: 1 },
    ]);
    await expect(mixed).rejects.toThrow(TenantInactiveError);
    expect(await fleet.counts(queue, acme!)).toMatchObject({ waiting: 0, delayed: 0 });
    expect(
      () => new FleetWorker({ engine: fleet.engine, orgs: reg.registry }, queue, async () => {}),
    ).toThrow(/Expected `pools`/);
    expect(() => fleet.worker(queue, async () => {}, { concurrency: 0, borrowConnection: false })).toThrow(
      ConfigError,
    );
    expect(() => fleet.worker(queue, async () => {}, { jobsPerTurn: 1.5, borrowConnection: false })).toThrow(
      'Expected `jobsPerTurn` to be an integer between 1 and 1000, got 1.5',
    );
  });

  it('runs each job with its tenant, attempt and signal, and completes it with its result', async () => {
    const { fleet, queue } = fx;
    const tenants = await reg.addTenants(3, { weight: 2 });
    const seen: Array<{ tenant: string; slug: string; attempt: number; aborted: boolean; n: number }> = [];
    for (const tenant of tenants) {
      await fleet.enqueueBulk(
        queue,
        [1, 2].map((n) => ({ tenant, name: 'render', data: { n } })),
      );
    }
    const worker = fleet.worker<{ n: number }>(
      queue,
      async (job, ctx) => {
        seen.push({
          tenant: job.tenant,
          slug: ctx.tenant.slug,
          attempt: ctx.attempt,
          aborted: ctx.signal.aborted,
          n: job.data.n,
        });
        ctx.log.debug('ran');
        return { doubled: job.data.n * 2 };
      },
      { borrowConnection: false, concurrency: 4 },
    );
    const completed: ActiveJob[] = [];
    worker.on('job:completed', ({ job }) => completed.push(job));
    await until(() => completed.length === 6, 'six completions');
    expect(seen.every((s) => s.tenant === s.slug && s.attempt === 1 && !s.aborted)).toBe(true);
    expect(seen.map((s) => `${s.tenant}:${s.n}`).sort()).toEqual(
      tenants.flatMap((t) => [`${t}:1`, `${t}:2`]).sort(),
    );
    for (const tenant of tenants) {
      expect(await fleet.counts(queue, tenant)).toMatchObject({
        waiting: 0,
        active: 0,
        completed: 2,
        failed: 0,
      });
    }
    const first = completed[0]!;
    expect((await fleet.job(queue, first.tenant, first.id))?.result).toEqual({
      doubled: (first.data as { n: number }).n * 2,
    });
    await worker.close();
    expect(worker.runningCount).toBe(0);
  });

  it('lends each handler a connection to its own tenant’s schema, and takes every one back', async () => {
    const { fleet, queue } = fx;
    const tenants = await reg.addTenants(4);
    for (const tenant of tenants) {
      const org = await reg.registry.get(tenant);
      await pools.withTenant(tenant, (db) =>
        db.query(`create table if not exists "${org.schemaName}".marks (v text)`),
      );
      await fleet.enqueueBulk(
        queue,
        [1, 2, 3].map((n) => ({ tenant, name: 'mark', data: `${tenant}#${n}` })),
      );
    }
    const mismatches: string[] = [];
    let done = 0;
    const worker = fleet.worker<string>(
      queue,
      async (job, ctx) => {
        const [row] = await ctx.db!.query<{ schema: string }>('select current_schema() as schema');
        if (row?.schema !== ctx.tenant.schemaName || ctx.db!.slug !== job.tenant) mismatches.push(job.id);
        // Unqualified: lands in whatever schema the connection's search_path names.
        await ctx.db!.query('insert into marks (v) values ($1)', [job.data]);
        done += 1;
      },
      { concurrency: 6, perTenantConcurrency: 2 },
    );
    await until(() => done === 12, 'twelve jobs');
    await worker.close();
    expect(mismatches).toEqual([]);
    for (const tenant of tenants) {
      const org = await reg.registry.get(tenant);
      const rows = await pools.withTenant(tenant, (db) =>
        db.query<{ v: string }>(`select v from "${org.schemaName}".marks order by v`),
      );
      expect(rows.map((r) => r.v)).toEqual([1, 2, 3].map((n) => `${tenant}#${n}`));
    }
    expect(pools.stats().budget.inUse).toBe(0);
  });

  it('runs a tenant’s jobs back to back on one borrowed connection while the round stays on it', async () => {
    const { fleet, queue } = fx;
    const [tenant] = await reg.addTenants(1);
    await fleet.enqueueBulk(
      queue,
      Array.from({ length: 6 }, (_, i) => ({ tenant: tenant!, name: 'n', data: i })),
    );
    const leases: unknown[] = [];
    const schemas: string[] = [];
    const worker = fleet.worker(
      queue,
      async (_job, ctx) => {
        leases.push(ctx.db!.raw);
        const [row] = await ctx.db!.query<{ schema: string }>('select current_schema() as schema');
        schemas.push(row!.schema);
      },
      { concurrency: 1 },
    );
    await until(async () => (await fleet.counts(queue, tenant!)).completed === 6, 'six completions');
    await worker.close();
    // The only tenant is always the round's next pick: each completion took the next job.
    // Each job gave its connection back and the next borrowed again through the pool's
    // checkout, which lent the same driver connection: one connection served all six.
    expect(new Set(leases).size).toBe(1);
    expect(schemas).toEqual(Array(6).fill((await reg.registry.get(tenant!)).schemaName));
    expect(pools.stats().budget.inUse).toBe(0);
  });

  it('serves each pick as a turn of jobsPerTurn jobs on one connection, weight turns per round', async () => {
    const { fleet, queue } = fx;
    const [heavy] = await reg.addTenants(1, { weight: 2 }, 'turn-heavy');
    const light = await reg.addTenants(2, {}, 'turn-light');
    for (const tenant of [heavy!, ...light])
      await fleet.enqueueBulk(
        queue,
        Array.from({ length: 12 }, (_, i) => ({ tenant, name: 'n', data: i })),
      );
    const served: { tenant: string; db: unknown }[] = [];
    const worker = fleet.worker(
      queue,
      async (_job, ctx) => {
        served.push({ tenant: ctx.tenant.slug, db: ctx.db!.raw });
      },
      { concurrency: 1, jobsPerTurn: 3 },
    );
    await until(() => served.length === 36, '36 completions');
    await worker.close();
    // Maximal runs of one tenant: a light tenant's run is one turn (3 jobs); the heavy
    // tenant's two turns per round follow each other (6 jobs), until it runs out.
    const runs: { tenant: string; dbs: Set<unknown>; length: number }[] = [];
    for (const { tenant, db } of served) {
      const last = runs.at(-1);
      if (last?.tenant === tenant) {
        last.length += 1;
        last.dbs.add(db);
      } else runs.push({ tenant, dbs: new Set([db]), length: 1 });
    }
    expect(runs.filter((r) => r.tenant === heavy).map((r) => r.length)).toEqual([6, 6]);
    for (const tenant of light)
      expect(runs.filter((r) => r.tenant === tenant).map((r) => r.length)).toEqual([3, 3, 3, 3]);
    // Each job of a run borrowed afresh, and the pool lent the same driver connection back.
    for (const run of runs) expect(run.dbs.size).toBe(1);
    expect(pools.stats().budget.inUse).toBe(0);
  });

  it('retries with backoff, then fails keeping the error and stack; UnrecoverableError stops at once', async () => {
    const { fleet, queue } = fx;
    const [tenant] = await reg.addTenants(1);
    const attempts = new Map<string, number[]>();
    const retryId = await fleet.enqueue(queue, {
      tenant: tenant!,
      name: 'flaky',
      data: 'retry',
      attempts: 3,
      backoff: { type: 'exponential', delayMs: 20 },
    });
    const fatalId = await fleet.enqueue(queue, {
      tenant: tenant!,
      name: 'fatal',
      data: 'fatal',
      attempts: 5,
    });
    const oddId = await fleet.enqueue(queue, { tenant: tenant!, name: 'odd', data: 'odd', attempts: 1 });
    const worker = fleet.worker<string>(
      queue,
      async (job, ctx) => {
        attempts.set(job.id, [...(attempts.get(job.id) ?? []), ctx.attempt]);
        if (job.data === 'fatal') throw new UnrecoverableError('the record is gone');
        if (job.data === 'odd') throw 'a string, not an Error';
        throw new Error(`boom on attempt ${ctx.attempt}`);
      },
      { borrowConnection: false },
    );
    const retrying: string[] = [];
    const failed: Array<{ id: string; unrecoverable: boolean; message: string }> = [];
    worker.on('job:retrying', ({ job }) => retrying.push(job.id));
    worker.on('job:failed', ({ job, error, unrecoverable }) =>
      failed.push({ id: job.id, unrecoverable, message: error.message }),
    );
    await until(() => failed.length === 3, 'three final failures');
    expect(attempts.get(retryId)).toEqual([1, 2, 3]);
    expect(attempts.get(fatalId)).toEqual([1]);
    expect(retrying).toEqual([retryId, retryId]);
    expect(failed.find((f) => f.id === fatalId)).toMatchObject({ unrecoverable: true });
    const retried = await fleet.job(queue, tenant!, retryId);
    expect(retried).toMatchObject({ state: 'failed', attemptsMade: 3 });
    expect(retried?.error?.message).toBe('boom on attempt 3');
    expect(retried?.error?.stack).toContain('fleet-worker.test.ts');
    const odd = await fleet.job(queue, tenant!, oddId);
    expect(odd?.error?.message).toBe('Expected the handler to throw an Error, got "a string, not an Error"');
    expect(await fleet.counts(queue, tenant!)).toMatchObject({
      failed: 3,
      completed: 0,
      waiting: 0,
      delayed: 0,
    });
  });

  it('runs a tenant’s jobs by priority, then FIFO, and a delayed job only once due', async () => {
    const { fleet, queue } = fx;
    const [tenant] = await reg.addTenants(1);
    const order: string[] = [];
    await fleet.enqueue(queue, { tenant: tenant!, name: 'later', data: 'delayed', delayMs: 400 });
    for (const [data, priority] of [
      ['fifo-1', undefined],
      ['p3', 3],
      ['p1', 1],
      ['fifo-2', undefined],
      ['p2', 2],
    ] as const) {
      await fleet.enqueue(queue, { tenant: tenant!, name: 'n', data, ...(priority ? { priority } : {}) });
    }
    const worker = fleet.worker<string>(queue, async (job) => void order.push(job.data), {
      borrowConnection: false,
      concurrency: 1,
    });
    await until(() => order.length === 6, 'six jobs');
    expect(order).toEqual(['p1', 'p2', 'p3', 'fifo-1', 'fifo-2', 'delayed']);
    await worker.close();
  });

  it('never runs more of one tenant at once than perTenantConcurrency or the org’s maxConcurrency', async () => {
    const { fleet, queue } = fx;
    const [capped, open] = await reg.addTenants(2);
    await reg.registry.update(capped!, { maxConcurrency: 2 });
    const live = new Map<string, number>();
    const peak = new Map<string, number>();
    for (const tenant of [capped!, open!]) {
      await fleet.enqueueBulk(
        queue,
        Array.from({ length: 40 }, (_, i) => ({ tenant, name: 'n', data: i })),
      );
    }
    let done = 0;
    const worker = fleet.worker(
      queue,
      async (job) => {
        live.set(job.tenant, (live.get(job.tenant) ?? 0) + 1);
        peak.set(job.tenant, Math.max(peak.get(job.tenant) ?? 0, live.get(job.tenant)!));
        await new Promise((resolve) => setTimeout(resolve, 2));
        live.set(job.tenant, live.get(job.tenant)! - 1);
        done += 1;
      },
      { borrowConnection: false, concurrency: 16, perTenantConcurrency: 5 },
    );
    await until(() => done === 80, 'eighty jobs');
    expect(peak.get(capped!)).toBe(2);
    expect(peak.get(open!)).toBe(5);
    await worker.close();
  });

  it('sets the caps of the capped tenants it first sees in one engine call before serving them; when that fails, skips them until the next look', async () => {
    const { fleet, queue } = fx;
    const [capped1, capped2, open1, open2] = await reg.addTenants(4);
    const capped = [capped1!, capped2!].sort();
    const open = [open1!, open2!].sort();
    for (const tenant of capped) await reg.registry.update(tenant, { maxConcurrency: 3 });
    await fleet.enqueueBulk(
      queue,
      [...capped, ...open].map((tenant) => ({ tenant, name: 'n', data: tenant })),
    );
    // The engine runs as usual; its first write of caps fails as a dropped connection would.
    const capWrites: string[][] = [];
    interceptCaps(fleet, (written) => {
      if (written.every((cap) => cap.endsWith('=null'))) return undefined;
      capWrites.push(written);
      return capWrites.length === 1 ? Promise.reject(new Error('cap write failed')) : undefined;
    });
    const { worker, ran, skipped, errors } = recordingWorker(fleet, queue);
    await until(() => ran.length === 4, 'every job, once the caps were written');
    const written = capped.map((tenant) => `${tenant}=3`);
    expect(capWrites).toEqual([written, written]);
    expect(skipped.sort()).toEqual(capped.map((tenant) => `${tenant}:error`));
    expect(errors).toEqual(['setTenantConcurrency (2 tenants)']);
    // The uncapped tenants did not wait for the next look.
    expect(ran.slice(0, 2).sort()).toEqual(open);
    await worker.close();
  });

  it('lifts caps in the background: serves the tenants meanwhile, reports a failed lift and lifts again at the refresh', async () => {
    const { fleet, queue } = fx;
    const [first, second] = await reg.addTenants(2);
    const tenants = [first!, second!].sort();
    await fleet.enqueueBulk(
      queue,
      tenants.map((tenant) => ({ tenant, name: 'n', data: tenant })),
    );
    const writes: string[][] = [];
    // The first lift hangs until the test lets it fail.
    let failLift!: () => void;
    const firstLift = new Promise<void>((_, reject) => {
      failLift = () => reject(new Error('lift failed'));
    });
    interceptCaps(fleet, (written) => {
      writes.push(written);
      return writes.length === 1 ? firstLift : undefined;
    });
    const { worker, ran, skipped, errors } = recordingWorker(fleet, queue);
    await until(() => ran.length === 2, 'both jobs while the lift is under way');
    await sleep(500); // two refreshes: a lift on its way is not asked again
    const lift = tenants.map((tenant) => `${tenant}=null`);
    expect(writes).toEqual([lift]);
    failLift();
    await until(() => errors.length === 1, 'the failed lift reported');
    expect(errors).toEqual(['setTenantConcurrency (2 tenants)']);
    await until(() => writes.length >= 2, 'the lift again, at the refresh');
    expect(writes.every((write) => write.join() === lift.join())).toBe(true);
    expect(skipped).toEqual([]);
    await worker.close();
  });

  it('writes a cap restored while its lift is still on its way, after the lift', async () => {
    const { fleet, queue } = fx;
    const [tenant] = await reg.addTenants(1);
    await reg.registry.update(tenant!, { maxConcurrency: 3 });
    await fleet.enqueue(queue, { tenant: tenant!, name: 'n', data: 1 });
    const writes: string[] = [];
    let landLift!: () => void;
    const lift = new Promise<void>((resolve) => {
      landLift = resolve;
    });
    interceptCaps(fleet, (written) => {
      writes.push(written.join());
      return written.join() === `${tenant}=null` ? lift : undefined;
    });
    const { worker, ran } = recordingWorker(fleet, queue);
    await until(() => ran.length === 1, 'the job, once its cap was written');
    await reg.registry.update(tenant!, { maxConcurrency: null });
    await until(() => writes.length === 2, 'the lift, at the refresh');
    await reg.registry.update(tenant!, { maxConcurrency: 3 });
    // The cap before the lift was 3 too: it must not look unchanged while the lift hangs.
    await until(() => writes.length === 3, 'the cap again, at the next refresh');
    landLift();
    await sleep(500); // two more refreshes: nothing left to write
    expect(writes).toEqual([`${tenant}=3`, `${tenant}=null`, `${tenant}=3`]);
    await worker.close();
  });

  it('leaves the jobs of a deactivated tenant waiting, and serves the others', async () => {
    const { fleet, queue } = fx;
    const [active, paused] = await reg.addTenants(2);
    await fleet.enqueue(queue, { tenant: paused!, name: 'n', data: 'p' });
    await fleet.enqueue(queue, { tenant: active!, name: 'n', data: 'a' });
    await reg.registry.deactivate(paused!);
    const ran: string[] = [];
    const skipped: string[] = [];
    const worker = fleet.worker(queue, async (job) => void ran.push(job.tenant), {
      borrowConnection: false,
      autorun: false,
    });
    worker.on('tenant:skipped', ({ tenant, reason }) => skipped.push(`${tenant}:${reason}`));
    worker.run();
    await until(() => ran.length === 1 && skipped.length === 1, 'the active job and the skip');
    expect(ran).toEqual([active]);
    expect(skipped).toEqual([`${paused}:inactive`]);
    expect(await fleet.counts(queue, paused!)).toMatchObject({ waiting: 1, active: 0 });
    await worker.close();
  });

  it('ends each turn by completing its job and taking the next tenant’s first job in one engine call', async () => {
    const { fleet, queue } = fx;
    const tenants = await reg.addTenants(3);
    await fleet.enqueueBulk(
      queue,
      tenants.flatMap((tenant) => [1, 2, 3, 4].map((i) => ({ tenant, name: 'n', data: i }))),
    );
    // Count what the worker asks of the engine (the engine itself runs as usual).
    const engineUnderTest = fleet.engine;
    const calls = { fetch: 0, handedOn: 0 };
    const fetch = engineUnderTest.fetch.bind(engineUnderTest);
    const complete = engineUnderTest.complete.bind(engineUnderTest);
    // An engine may fetch inside complete (the memory engine does): count the worker's own.
    let completing = 0;
    engineUnderTest.fetch = (...args) => {
      if (completing === 0) calls.fetch += 1;
      return fetch(...args);
    };
    engineUnderTest.complete = async (job, result, options) => {
      const tenant = options?.fetchNext?.tenant;
      if (tenant !== undefined && tenant !== job.tenant) calls.handedOn += 1;
      completing += 1;
      try {
        return await complete(job, result, options);
      } finally {
        completing -= 1;
      }
    };
    const order: string[] = [];
    const worker = fleet.worker(queue, async (job) => void order.push(job.tenant), {
      concurrency: 1,
      jobsPerTurn: 1,
      borrowConnection: false,
    });
    await until(() => order.length === 12, 'every job to run');
    await worker.close();
    // Strict rotation, and every change of tenant went through a completion.
    expect(order.slice(0, 3).sort()).toEqual([...tenants].sort());
    for (let i = 3; i < 12; i++) expect(order[i]).toBe(order[i - 3]);
    expect(calls.handedOn).toBeGreaterThanOrEqual(11);
    // Fetches only start the slot and look again once the tenants run dry at the end
    // (a plain worker would fetch once per tenant change: 12 times).
    expect(calls.fetch).toBeLessThanOrEqual(4);
    expect(await fleet.counts(queue, tenants[0]!)).toMatchObject({ completed: 4, active: 0, waiting: 0 });
  });

  it('close() waits for running jobs, then stops fetching', async () => {
    const { fleet, queue } = fx;
    const [tenant] = await reg.addTenants(1);
    await fleet.enqueueBulk(
      queue,
      Array.from({ length: 5 }, (_, i) => ({ tenant: tenant!, name: 'n', data: i })),
    );
    const release = gate();
    let started = 0;
    let finished = 0;
    const worker = fleet.worker(
      queue,
      async () => {
        started += 1;
        await release.promise;
        finished += 1;
      },
      { concurrency: 2, perTenantConcurrency: 2 },
    );
    await until(() => started === 2, 'two running');
    const closing = worker.close();
    expect(worker.close()).toBe(closing);
    release.open();
    await closing;
    expect({ started, finished }).toEqual({ started: 2, finished: 2 });
    expect(pools.stats().budget.inUse).toBe(0);
    expect(await fleet.counts(queue, tenant!)).toMatchObject({ completed: 2, waiting: 3, active: 0 });
  });

  it('close() past its deadline aborts running jobs through ctx.signal and leaves them to run again', async () => {
    const { fleet, queue } = fx;
    const [tenant] = await reg.addTenants(1);
    const id = await fleet.enqueue(queue, { tenant: tenant!, name: 'slow', data: 'x', attempts: 1 });
    const aborted: string[] = [];
    let running = false;
    let held: TenantConnection | undefined;
    const first = fleet.worker(
      queue,
      (job, ctx) =>
        new Promise((_, reject) => {
          running = true;
          held = ctx.db;
          ctx.signal.addEventListener('abort', () => {
            aborted.push(job.id);
            reject(ctx.signal.reason);
          });
        }),
      // A lock long enough that a loaded machine cannot let it lapse while the job runs
      // (a lapsed lock hands the job out again: at least once, but not what this test is about).
      { lockDurationMs: 2_000, stalledIntervalMs: 50 },
    );
    const abortedEvents: string[] = [];
    first.on('job:aborted', ({ job, reason }) => abortedEvents.push(`${job.id}:${reason}`));
    await until(() => running, 'the job to start');
    expect(held?.slug).toBe(tenant);
    // Idle slots borrow before they fetch (and find nothing), so right after the start more
    // than one connection may be out. Steady state is exactly one: the running job's.
    await until(() => pools.stats().budget.inUse === 1, 'only the running job to hold a connection');
    await first.close({ timeoutMs: 50 });
    // The handler never settled, yet its connection was taken back (destroyed, not lent on).
    await expect(held!.query('select 1')).rejects.toThrow(ClosedError);
    expect(pools.stats().budget.inUse).toBe(0);
    expect(aborted).toEqual([id]);
    expect(abortedEvents).toEqual([`${id}:shutdown`]);
    // Not failed (attempts: 1 would have made that final): still active until its lock expires.
    expect(await fleet.counts(queue, tenant!)).toMatchObject({ failed: 0, completed: 0 });
    const attempts: number[] = [];
    const second = fleet.worker(queue, async (_job, ctx) => void attempts.push(ctx.attempt), {
      borrowConnection: false,
      lockDurationMs: 200,
      stalledIntervalMs: 50,
    });
    await until(async () => (await fleet.counts(queue, tenant!)).completed === 1, 'the job to run again');
    expect(attempts).toEqual([1]);
    await second.close();
  });
});

// Once per file on the memory engine: the worker alone is under test, and it takes thousands
// of jobs, which the memory engine runs in a blink, for V8 to optimise the slot loop.
describe('FleetWorker hand-ons', () => {
  it('let each finished turn and its first job be collected while the hand-ons go on', async () => {
    const fx = await openFleet(memoryEngine, reg.registry);
    try {
      const { fleet, queue } = fx;
      const tenants = await reg.addTenants(3);
      const perTenant = 2_000;
      for (const tenant of tenants)
        await fleet.enqueueBulk(
          queue,
          Array.from({ length: perTenant }, (_, i) => ({ tenant, name: 'n', data: { i } })),
        );
      // Turns once linked each to the next (turn.handedOn), and the slot loop, once V8 had
      // optimised it, kept a stale turn in its suspended frame: under a backlog that never
      // ran dry, every turn after that one stayed reachable, each with its first job.
      const collect = garbageCollector();
      const seen: WeakRef<ActiveJob>[] = [];
      const lookBackAt = perTenant * 3 - 100;
      let alive: number | undefined;
      const worker = fleet.worker(
        queue,
        async (job) => {
          seen.push(new WeakRef(job));
          if (seen.length !== lookBackAt) return;
          // Still mid-backlog, so every turn so far ended by handing the slot on. A macrotask
          // first: a WeakRef keeps its target alive until the event loop's current job ends.
          await new Promise((resolve) => setImmediate(resolve));
          collect();
          alive = seen.slice(0, -10).filter((ref) => ref.deref() !== undefined).length;
        },
        { concurrency: 1, jobsPerTurn: 1, borrowConnection: false },
      );
      await until(() => alive !== undefined, 'the worker to look back');
      await worker.close();
      // A stale turn in the slot's frame may keep its own job; the chain kept thousands.
      expect(alive).toBeLessThanOrEqual(2);
    } finally {
      await fx.cleanup();
    }
  });
});
