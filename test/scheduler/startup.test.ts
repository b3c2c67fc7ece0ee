/**
 * Startup jobs: 'blocking' resolves after every job ran, 'background' at once with the jobs
 * running beside; a failing job is recorded and logged without stopping the others; the
 * built-in prewarm job keeps TenantPools' PrewarmReport (real pools on SQLite tenants).
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prewarmJob, runStartupJobs, type StartupJob } from '../../src/scheduler/startup.js';
import { OrgRegistry } from '../../src/tenancy/registry/org-registry.js';
import { TenantPools } from '../../src/tenancy/tenant-pools/tenant-pools.js';
import { tempDir } from '../support/services.js';
import { gate } from '../worker/support.js';

let dir: string;
let registry: OrgRegistry;
let pools: TenantPools;

beforeAll(async () => {
  dir = tempDir('startup-');
  registry = await OrgRegistry.open(`sqlite:${join(dir, 'registry.db')}`);
  await registry.migrate();
  for (const slug of ['a', 'b', 'c']) {
    await registry.add({ slug, storageMode: 'database', databaseUrl: `sqlite:${join(dir, `${slug}.db`)}` });
  }
  await registry.add({
    slug: 'gone',
    storageMode: 'database',
    databaseUrl: `sqlite:${join(dir, 'gone.db')}`,
    active: false,
  });
  pools = await TenantPools.open({ registry, maxConnections: 8 });
});

afterAll(async () => {
  await pools.close();
  await registry.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('startup jobs', () => {
  it("'blocking' resolves once every job has run, in order, and keeps the prewarm report", async () => {
    const order: string[] = [];
    const job = (name: string): StartupJob => ({
      name,
      run: async () => {
        order.push(name);
      },
    });
    const lines: Array<{ obj: unknown; msg: string }> = [];
    const logger = {
      info: (obj: unknown, msg: string) => lines.push({ obj, msg }),
      error: (obj: unknown, msg: string) => lines.push({ obj, msg }),
    };
    const run = await runStartupJobs([job('first'), prewarmJob(pools), job('last')], {
      mode: 'blocking',
      logger: logger as never,
    });
    expect(order).toEqual(['first', 'last']);
    expect(run.results().map((r) => [r.name, r.ok])).toEqual([
      ['first', true],
      ['prewarm', true],
      ['last', true],
    ]);
    expect(run.prewarmReport).toMatchObject({ totalActive: 3, warmed: 3, failed: 0, skippedCap: 0 });
    expect(pools.stats().budget.open).toBeGreaterThanOrEqual(3);
    const logged = lines.find((l) => l.msg === 'pools prewarmed');
    expect(logged?.obj).toMatchObject({ report: { totalActive: 3, warmed: 3 } });
  });

  it("'background' resolves at once and the jobs run beside the caller", async () => {
    const release = gate();
    let finished = false;
    const run = await runStartupJobs(
      [
        {
          name: 'slow',
          run: async () => {
            await release.promise;
            finished = true;
          },
        },
      ],
      { mode: 'background' },
    );
    expect(finished).toBe(false);
    expect(run.results()).toEqual([]);
    release.open();
    const results = await run.done;
    expect(finished).toBe(true);
    expect(results.map((r) => r.ok)).toEqual([true]);
  });

  it('a failing job is recorded and the next one still runs', async () => {
    const run = await runStartupJobs(
      [
        {
          name: 'broken',
          run: async () => {
            throw new Error('cannot warm the cache');
          },
        },
        { name: 'after', run: async () => 42 },
      ],
      { mode: 'blocking' },
    );
    const [broken, after] = run.results();
    expect(broken).toMatchObject({ name: 'broken', ok: false });
    expect(broken?.ok === false && broken.error.message).toBe('cannot warm the cache');
    expect(after).toMatchObject({ name: 'after', ok: true, result: 42 });
  });

  it('rejects an unknown mode naming the option', async () => {
    await expect(runStartupJobs([], { mode: 'eager' as never })).rejects.toMatchObject({
      code: 'CONFIG',
      option: 'startup',
    });
  });
});
