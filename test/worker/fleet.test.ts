/**
 * Fleet as a composition: what `Fleet.open` opens from URLs and options it also closes,
 * what it is handed stays open, and bad options fail before anything is opened.
 */
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { Fleet } from '../../src/fleet.js';
import type { ActiveJob } from '../../src/queue/engine.js';
import { ClosedError, ConfigError } from '../../src/reporting/errors.js';
import type { Org } from '../../src/tenancy/org.js';
import type { TenantConnection } from '../../src/tenancy/tenant-pools/tenant-connection.js';
import type { FleetWorker } from '../../src/worker/fleet-worker.js';
import type { JobContext, JobHandler } from '../../src/worker/job-context.js';
import { deletePrefix } from '../queue/engines.js';
import { REDIS_URL, uniqueName } from '../support/services.js';
import { until } from '../support/wait.js';
import { openRegistry, type RegistryFixture } from './support.js';

let reg: RegistryFixture;
beforeAll(async () => {
  reg = await openRegistry();
});
afterAll(async () => {
  await reg?.cleanup();
});

describe('Fleet', () => {
  it('opens the registry and pools it is given as URL and options, and closes them', async () => {
    const [tenant] = await reg.addTenants(1, {}, 'own');
    const fleet = await Fleet.open({
      engine: 'memory',
      registry: reg.store.url,
      pools: { maxConnections: 2 },
    });
    expect(fleet.engine.name).toBe('memory');
    const queue = uniqueName('q');
    await fleet.enqueue(queue, { tenant: tenant!, name: 'n', data: 1 });
    const schemas: string[] = [];
    fleet.worker(queue, async (_job, ctx) => {
      const [row] = await ctx.db!.query<{ s: string }>('select current_schema() as s');
      schemas.push(row!.s);
    });
    await until(() => schemas.length === 1, 'the job');
    expect(schemas).toEqual([(await reg.registry.get(tenant!)).schemaName]);
    await fleet.close();
    expect(fleet.close()).toBe(fleet.close());
    await expect(fleet.pools!.acquire(tenant!)).rejects.toThrow(ClosedError);
    await expect(fleet.registry.get(tenant!)).rejects.toThrow(ClosedError);
    await expect(fleet.enqueue(queue, { tenant: tenant!, name: 'n', data: 1 })).rejects.toThrow(ClosedError);
    // The registry handed to other fleets is a separate one, still open.
    expect((await reg.registry.get(tenant!)).slug).toBe(tenant);
  });

  it('opens the BullMQ engine from a Redis URL under its prefix', async () => {
    const [tenant] = await reg.addTenants(1, {}, 'redis');
    const prefix = uniqueName('fleetopen');
    const fleet = await Fleet.open({ engine: 'bullmq', redis: REDIS_URL, prefix, registry: reg.registry });
    try {
      expect(fleet.engine.name).toBe('bullmq');
      const queue = uniqueName('q');
      const id = await fleet.enqueue(queue, {
        tenant: tenant!,
        name: 'n',
        data: { ok: true },
        batchId: 'b1',
      });
      expect(await fleet.counts(queue, tenant!)).toMatchObject({ waiting: 1 });
      expect(await fleet.batch('b1')).toMatchObject({ total: 1, pending: 1 });
      const done: string[] = [];
      fleet.worker(queue, async (job) => void done.push(job.id), { borrowConnection: false });
      await until(() => done.length === 1, 'the job');
      expect(done).toEqual([id]);
      await until(async () => (await fleet.batch('b1')).completed === 1, 'the batch to count it');
    } finally {
      await fleet.close();
      await deletePrefix(prefix);
    }
    // Handed in, so left open.
    expect((await reg.registry.get(tenant!)).slug).toBe(tenant);
  });

  it('refuses bad options with ConfigError before opening anything', async () => {
    await expect(Fleet.open({ engine: 'bullmq', registry: reg.registry })).rejects.toThrow(ConfigError);
    await expect(Fleet.open({ engine: 'kafka' as 'memory', registry: reg.registry })).rejects.toMatchObject({
      option: 'engine',
    });
    await expect(Fleet.open({ registry: reg.registry, prefix: 'a:b' })).rejects.toMatchObject({
      option: 'prefix',
    });
    await expect(
      Fleet.open({ registry: reg.registry, pools: { registry: 'x' } as never }),
    ).rejects.toMatchObject({ option: 'pools' });
    await expect(Fleet.open({ registry: reg.registry, maxDataBytes: 0 })).rejects.toThrow(
      /Expected `maxDataBytes` to be an integer between 1 and 536870912, got 0/,
    );
  });

  it('types the handler from the worker’s Data and Result (checked by tsc)', () => {
    expectTypeOf<Parameters<JobHandler<{ n: number }, string>>[0]>().toEqualTypeOf<
      ActiveJob<{ n: number }>
    >();
    expectTypeOf<ReturnType<JobHandler<{ n: number }, string>>>().toEqualTypeOf<Promise<string> | string>();
    expectTypeOf<JobContext['tenant']>().toEqualTypeOf<Org>();
    expectTypeOf<JobContext['db']>().toEqualTypeOf<TenantConnection | undefined>();
    expectTypeOf<JobContext['signal']>().toEqualTypeOf<AbortSignal>();
    expectTypeOf<Fleet['worker']>().returns.toEqualTypeOf<FleetWorker<unknown, unknown>>();
  });
});
