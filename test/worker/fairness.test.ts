/**
 * Fairness across tenants (issue 4, items 2 and 4), run over every engine: a noisy
 * tenant's backlog does not hold up quiet tenants, weights hold over every window of
 * completions, and a tenant whose pool cannot lend does not stall the others.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { engines } from '../queue/engines.js';
import { type FleetFixture, openFleet, openRegistry, type RegistryFixture, until } from './support.js';

let reg: RegistryFixture;
beforeAll(async () => {
  reg = await openRegistry();
});
afterAll(async () => {
  await reg?.cleanup();
});

/** Enqueues `count` no-op jobs of one tenant in bulks of 1,000. */
async function backlog(fx: FleetFixture, tenant: string, count: number): Promise<void> {
  for (let start = 0; start < count; start += 1000) {
    const size = Math.min(1000, count - start);
    await fx.fleet.enqueueBulk(
      fx.queue,
      Array.from({ length: size }, (_, i) => ({ tenant, name: 'noop', data: start + i })),
    );
  }
}

describe.each(engines)('fairness on the $name engine', (engine) => {
  let fx: FleetFixture;
  beforeEach(async () => {
    fx = await openFleet(engine, reg.registry);
  });
  afterEach(async () => {
    await fx.cleanup();
  });

  it('runs every quiet job before the noisy tenant completes its 1,000th', async () => {
    const [noisy] = await reg.addTenants(1, {}, 'noisy');
    const quiet = await reg.addTenants(20, {}, 'quiet');
    await backlog(fx, noisy!, 20_000);
    for (const tenant of quiet) await backlog(fx, tenant, 10);
    const completions: string[] = [];
    const worker = fx.fleet.worker(fx.queue, async () => {}, { concurrency: 8, borrowConnection: false });
    worker.on('job:completed', ({ job }) => completions.push(job.tenant));
    const noisyCount = () => completions.filter((t) => t === noisy).length;
    await until(() => noisyCount() >= 1000, "noisy's 1,000th completion");
    await worker.close();
    const thousandth = indexOfNth(completions, noisy!, 1000);
    const quietDone = completions.slice(0, thousandth).filter((t) => t !== noisy);
    expect(quietDone).toHaveLength(200);
    for (const tenant of quiet) expect(quietDone.filter((t) => t === tenant)).toHaveLength(10);
  });

  it('completes two backlogged tenants of weights 3 and 1 at 3:1 (±10%) in every window of 400', async () => {
    const [heavy] = await reg.addTenants(1, { weight: 3 }, 'heavy');
    const [light] = await reg.addTenants(1, { weight: 1 }, 'light');
    // Enough that both stay backlogged through the 2,400 completions measured.
    await backlog(fx, heavy!, 2_400);
    await backlog(fx, light!, 1_200);
    const completions: string[] = [];
    // perTenantConcurrency as high as concurrency: a per-tenant cap below a tenant's
    // share would cap it instead of its weight (documented in the README draft).
    const worker = fx.fleet.worker(fx.queue, async () => {}, {
      concurrency: 8,
      perTenantConcurrency: 8,
      borrowConnection: false,
    });
    worker.on('job:completed', ({ job }) => completions.push(job.tenant));
    await until(() => completions.length >= 2_400, '2,400 completions');
    await worker.close();
    const measured = completions.slice(0, 2_400);
    const ratios: number[] = [];
    for (let start = 0; start + 400 <= measured.length; start++) {
      const heavyCount = measured.slice(start, start + 400).filter((t) => t === heavy).length;
      ratios.push(heavyCount / (400 - heavyCount));
    }
    expect(Math.min(...ratios)).toBeGreaterThanOrEqual(2.7);
    expect(Math.max(...ratios)).toBeLessThanOrEqual(3.3);
  });
});

function indexOfNth(values: readonly string[], value: string, n: number): number {
  let seen = 0;
  for (let i = 0; i < values.length; i++) {
    if (values[i] === value && ++seen === n) return i;
  }
  return -1;
}
