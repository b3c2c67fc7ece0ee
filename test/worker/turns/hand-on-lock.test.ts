/**
 * A turn's last job stays locked while its slot hands on. Its completion goes out in the
 * same engine call as the next tenant's first fetch, so only once that tenant's
 * connection is borrowed, and opening it may take longer than the lock lasts (here a TCP
 * proxy holds the connect for three lock durations). The finished job's lock is renewed
 * meanwhile: no stalled sweep takes it back, and it runs once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Fleet } from '../../../src/fleet.js';
import { TenantPools } from '../../../src/tenancy/tenant-pools/tenant-pools.js';
import { bullMqEngine, type EngineHarness } from '../../queue/engines.js';
import { type PgWorld, pgWorld, slugs } from '../../support/pools-fixture.js';
import { uniqueName } from '../../support/services.js';
import { type TcpProxy, tcpProxy } from '../../support/tcp-proxy.js';
import { until } from '../../support/wait.js';
import { gate } from '../support.js';

const LOCK_MS = 2_000;

let world: PgWorld;
let proxy: TcpProxy;
let harness: EngineHarness;
beforeAll(async () => {
  world = await pgWorld();
  proxy = await tcpProxy();
  harness = await bullMqEngine.open();
});
afterAll(async () => {
  await harness?.cleanup();
  await proxy?.close();
  await world?.cleanup();
});

it("renews a finished job's lock while the next tenant's connection opens", async () => {
  // Both tenants' databases are reached through the proxy, so whichever runs first, the
  // other's connect is the one held.
  const tenants = slugs('handon', 2);
  for (const slug of tenants) {
    const db = await world.createDatabase('handon');
    await world.addOrgs([{ slug, storageMode: 'database', databaseUrl: proxy.url(db.name) }]);
  }
  const pools = await TenantPools.open({ registry: world.registry, maxConnections: 4 });
  const fleet = await Fleet.open({ engine: harness.engine, registry: world.registry, pools });
  const queue = uniqueName('q');
  await fleet.enqueueBulk(
    queue,
    tenants.map((tenant) => ({ tenant, name: 'n', data: tenant })),
  );
  const runs = new Map<string, number>();
  const aborted: string[] = [];
  const firstDone = gate();
  let first: string | undefined;
  const worker = fleet.worker<string>(
    queue,
    async (job, ctx) => {
      first ??= job.data;
      runs.set(job.data, (runs.get(job.data) ?? 0) + 1);
      await ctx.db!.query('select 1');
      if (job.data === first) await firstDone.promise;
    },
    { concurrency: 1, jobsPerTurn: 1, lockDurationMs: LOCK_MS, stalledIntervalMs: 200 },
  );
  worker.on('job:aborted', ({ reason }) => aborted.push(reason));
  try {
    await until(() => first !== undefined, 'the first job to start');
    // From now on new connections are held; the first job's own keeps working.
    proxy.mode = 'hold';
    firstDone.open();
    await until(() => proxy.held === 1, "the next tenant's connect to be held");
    // Three lock durations: unrenewed, the lock would lapse and a sweep take the job back.
    await sleep(3 * LOCK_MS);
    expect(await harness.engine.counts(queue, first!)).toMatchObject({ active: 1, waiting: 0, completed: 0 });
    proxy.mode = 'pass';
    proxy.passHeld();
    await until(async () => {
      const counts = await Promise.all(tenants.map((tenant) => harness.engine.counts(queue, tenant)));
      return counts.every((count) => count.completed === 1);
    }, 'both jobs to complete');
    expect(Object.fromEntries(runs)).toEqual(Object.fromEntries(tenants.map((tenant) => [tenant, 1])));
    expect(aborted).toEqual([]);
  } finally {
    proxy.mode = 'pass';
    proxy.passHeld();
    await fleet.close();
    await pools.close();
  }
});
