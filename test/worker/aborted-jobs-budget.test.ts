import { afterAll, beforeAll, expect, it } from 'vitest';
import { Fleet } from '../../src/fleet.js';
import { ClosedError } from '../../src/reporting/errors.js';
import { TenantPools } from '../../src/tenancy/tenant-pools/tenant-pools.js';
import { type PgWorld, pgWorld, sampleMax, slugs } from '../support/pools-fixture.js';
import { uniqueName } from '../support/services.js';
import { until } from '../support/wait.js';

let world: PgWorld;
beforeAll(async () => {
  world = await pgWorld();
});
afterAll(async () => {
  await world.cleanup();
});

it('three workers closed with timeoutMs 100 during pg_sleep never take the server past the budget', async () => {
  const budget = 3;
  const tenant = await world.createDatabase('tp_aborted');
  const tag = uniqueName('aborted');
  const [slug] = slugs('aborted', 1) as [string];
  await world.addOrgs([
    { slug, storageMode: 'database', databaseUrl: `${tenant.url}?application_name=${tag}` },
  ]);
  const count = async (filter = '') =>
    Number(
      (
        await world.admin.query<{ n: string }>(
          `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 ${filter}`,
          [tag],
        )
      )[0]?.n,
    );
  const pools = await TenantPools.open({ registry: world.registry, maxConnections: budget });
  const fleet = await Fleet.open({ engine: 'memory', registry: world.registry, pools });
  const outcomes: unknown[] = [];
  let started = 0;
  const sampler = sampleMax(count, { intervalMs: 20 });
  let max = 0;
  try {
    for (let round = 0; round < 3; round++) {
      // A queue per round: the jobs given up on stay behind, not run again by the next worker.
      const queue = uniqueName('q');
      for (let i = 0; i < budget; i++) await fleet.enqueue(queue, { tenant: slug, name: 'sleep', data: i });
      // A handler that ignores its signal and waits for its statement: the job the worker
      // gives up on at close.
      const worker = fleet.worker(
        queue,
        async (_job, ctx) => {
          started++;
          try {
            await ctx.db!.query('select pg_sleep(8)');
            outcomes.push('finished');
          } catch (err) {
            outcomes.push(err);
          }
        },
        { concurrency: budget },
      );
      // The round's own handlers all started (each holds a connection) and all sleep.
      await until(
        async () =>
          started === (round + 1) * budget &&
          (await count(`AND query = 'select pg_sleep(8)' AND state = 'active'`)) === budget,
        'every handler of the round sleeping',
      );
      await worker.close({ timeoutMs: 100 });
    }
  } finally {
    ({ max } = await sampler.stop());
    await fleet.close();
    await pools.close();
  }
  // The sampler saw every round's handlers at once (it is not vacuous), never more.
  expect(max).toBe(budget);
  expect(started).toBe(3 * budget);
  await until(() => outcomes.length === started, 'every handler to settle');
  for (const outcome of outcomes) expect(outcome).toBeInstanceOf(ClosedError);
  expect(await count()).toBe(0);
});
