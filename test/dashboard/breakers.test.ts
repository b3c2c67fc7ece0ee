/**
 * Open circuit breakers, from `pools.stats()` to the dashboard: a tenant whose database
 * refuses connections (a closed port) opens its breaker after `failureThreshold` failures;
 * `stats().breakers` names it with its retry time, and the fleet page's data
 * (`/api/fleet`), `/metrics` (`fleet_breaker_open`) and the page itself show it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDashboard } from '../../dashboard/index.js';
import { SnapshotPublisher } from '../../src/metrics/snapshot-publisher.js';
import { MemoryEngine } from '../../src/queue/memory/memory-engine.js';
import { TenantUnavailableError } from '../../src/reporting/errors.js';
import { TenantPools } from '../../src/tenancy/tenant-pools/tenant-pools.js';
import { closedPort } from '../support/net.js';
import { type PgWorld, pgWorld, slugs } from '../support/pools-fixture.js';
import { parseExposition } from '../support/prometheus.js';
import { eventually, until } from '../support/wait.js';

let world: PgWorld;
let tenantDb: { name: string; url: string };

beforeAll(async () => {
  world = await pgWorld();
  tenantDb = await world.createDatabase('tp_brk');
});
afterAll(async () => {
  await world.cleanup();
});

describe('open circuit breakers', () => {
  it('are listed by pools.stats() and shown by /api/fleet, /metrics and the fleet page', async () => {
    const [broken, good] = slugs('brk', 2) as [string, string];
    const port = await closedPort();
    await world.addOrgs([
      { slug: broken, storageMode: 'database', databaseUrl: `postgres://postgres@127.0.0.1:${port}/nowhere` },
      { slug: good, storageMode: 'database', databaseUrl: tenantDb.url },
    ]);
    const pools = await TenantPools.open({
      registry: world.registry,
      maxConnections: 2,
      failureThreshold: 2,
      failureCooldownMs: 60_000,
    });
    const engine = new MemoryEngine();
    const publisher = new SnapshotPublisher({ engine, pools, periodMs: 100 });
    const dashboard = await startDashboard({ engine, port: 0 });
    try {
      await pools.withTenant(good, (db) => db.query('select 1'));
      expect(pools.stats().breakers).toEqual([]);
      await expect(pools.acquire(broken)).rejects.not.toBeInstanceOf(TenantUnavailableError);
      // One failure is below the threshold: the circuit is still closed.
      expect(pools.stats().breakers).toEqual([]);
      const before = Date.now();
      await expect(pools.acquire(broken)).rejects.not.toBeInstanceOf(TenantUnavailableError);
      const { breakers } = pools.stats();
      expect(breakers).toEqual([{ slug: broken, failures: 2, retryAt: expect.any(Number) }]);
      expect(breakers[0]!.retryAt).toBeGreaterThanOrEqual(before + 60_000);
      // The retry time is the one the fail-fast error carries.
      const error = (await pools.acquire(broken).catch((e: unknown) => e)) as TenantUnavailableError;
      expect(error).toBeInstanceOf(TenantUnavailableError);
      expect(error.retryAt).toBe(breakers[0]!.retryAt);

      type Page = {
        pools: { breakersOpen: number; breakers: { process: string; slug: string; retryAt: number }[] };
      };
      const page = await eventually(async () => {
        const answer = (await (await fetch(`${dashboard.url}/api/fleet`)).json()) as Page;
        return answer.pools.breakersOpen === 1 ? answer : null;
      }, 'the open breaker on /api/fleet');
      expect(page.pools.breakers).toEqual([
        { process: publisher.identity.id, slug: broken, failures: 2, retryAt: breakers[0]!.retryAt },
      ]);
      const metrics = parseExposition(await (await fetch(`${dashboard.url}/metrics`)).text());
      expect(metrics.types.get('fleet_breaker_open')).toBe('gauge');
      expect(metrics.samples.find((s) => s.name === 'fleet_breaker_open')?.value).toBe(1);
      const html = await (await fetch(`${dashboard.url}/`)).text();
      expect(html).toContain('id="breakers"');
      // No URL of the refused database on any answer.
      expect(JSON.stringify(page)).not.toContain(String(port));

      // Invalidating the tenant (its configuration fixed) closes the circuit.
      await pools.invalidate(broken);
      expect(pools.stats().breakers).toEqual([]);
      await until(
        async () =>
          ((await (await fetch(`${dashboard.url}/api/fleet`)).json()) as Page).pools.breakersOpen === 0,
        'the breaker to leave /api/fleet',
      );
    } finally {
      await dashboard.close();
      await publisher.close();
      await pools.close();
      await engine.close();
    }
  });
});
