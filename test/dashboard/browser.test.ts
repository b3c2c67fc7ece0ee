/**
 * The dashboard in a real headless Chromium (Debian's `chromium`, driven by
 * playwright-core; no browser is downloaded): two worker processes run jobs for several
 * tenants; the fleet page shows their throughput, their summed budget, a tenant's pool
 * and both processes, and drops the one that is killed; bull-board shows a tenant's
 * partition, and its Retry button gets a failed job run by the fleet.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningDashboard, startDashboard } from '../../dashboard/index.js';
import { BullMqEngine } from '../../src/queue/bullmq/bullmq-engine.js';
import { deletePrefix } from '../queue/engines.js';
import { sqliteFolder } from '../support/pools-fixture.js';
import { REDIS_URL, uniqueName } from '../support/services.js';
import { until } from '../support/wait.js';
import { openRegistry, type RegistryFixture } from '../worker/support.js';
import type { DashboardWorkerConfig, DashboardWorkerReady } from './fixtures/dashboard-worker.js';

const SCRIPT = fileURLToPath(new URL('./fixtures/dashboard-worker.ts', import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'browser-test-token';
// docs/dashboard.png is rewritten only when asked (FLEET_UPDATE_SCREENSHOT=1), so a test run leaves the tree clean.
const SCREENSHOT =
  process.env.FLEET_UPDATE_SCREENSHOT === '1'
    ? fileURLToPath(new URL('../../docs/dashboard.png', import.meta.url))
    : join(tmpdir(), `tenant-fleet-dashboard-${process.pid}.png`);
/** Bounds that only keep a broken fleet from hanging the suite. */
const PATIENCE = { timeoutMs: 30_000, intervalMs: 100 };

describe('the dashboard in headless Chromium', () => {
  let reg: RegistryFixture;
  const files = sqliteFolder();
  const prefix = uniqueName('fleet-dash-ui');
  const queue = uniqueName('reports').replaceAll('_', '-');
  const runsKey = `${prefix}:test:runs`;
  const healKey = `${prefix}:test:heal`;
  const tenants: string[] = [];
  let engine: BullMqEngine;
  let redis: Redis;
  let dashboard: RunningDashboard;
  let context: BrowserContext;
  let page: Page;
  const children: ChildProcess[] = [];
  const ready: DashboardWorkerReady[] = [];
  const profile = mkdtempSync(join(tmpdir(), 'tenant-fleet-chromium-'));

  async function spawnWorker(maxConnections: number): Promise<ChildProcess> {
    const config: DashboardWorkerConfig = {
      redisUrl: REDIS_URL,
      prefix,
      registryUrl: reg.store.url,
      queue,
      runsKey,
      healKey,
      maxConnections,
    };
    const child = fork(SCRIPT, [JSON.stringify(config)], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
    children.push(child);
    ready.push(
      await new Promise<DashboardWorkerReady>((resolve, reject) => {
        child.once('message', (message: DashboardWorkerReady) => resolve(message));
        child.once('exit', (code) => reject(new Error(`worker process exited early with ${code}`)));
      }),
    );
    return child;
  }

  beforeAll(async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} (apt-get install chromium)`).toBe(true);
    reg = await openRegistry();
    // Database-mode tenants on SQLite: each gets a pool of its own, a row in the pools table.
    const base = uniqueName('ui').replaceAll('_', '-');
    for (let i = 0; i < 4; i++) {
      const slug = `${base}-${i}`;
      await reg.registry.add({ slug, storageMode: 'database', databaseUrl: files.url(slug) });
      tenants.push(slug);
    }
    redis = new Redis(REDIS_URL);
    engine = new BullMqEngine({ connection: REDIS_URL, prefix });
    await spawnWorker(3);
    await spawnWorker(5);
    dashboard = await startDashboard({ engine, port: 0, token: TOKEN, queues: [queue] });
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      httpCredentials: { username: 'ops', password: TOKEN },
      viewport: { width: 1400, height: 1000 },
    });
    page = await context.newPage();
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await dashboard?.close();
    await engine?.close();
    await redis?.quit();
    await deletePrefix(prefix);
    await reg?.cleanup();
    files.remove();
    rmSync(profile, { recursive: true, force: true });
    if (process.env.FLEET_UPDATE_SCREENSHOT !== '1') rmSync(SCREENSHOT, { force: true });
  });

  const text = async (selector: string) =>
    ((await page.locator(selector).first().textContent()) ?? '').trim();

  it('shows throughput, the summed budget, a tenant pool and both processes, then drops a killed one', async () => {
    // A steady stream of jobs for every tenant while the page is watched.
    let feeding = true;
    const feed = (async () => {
      while (feeding) {
        await engine.enqueueBulk(
          queue,
          tenants.flatMap((tenant) =>
            Array.from({ length: 5 }, () => ({ tenant, name: 'n', data: { sleepMs: 20 } })),
          ),
        );
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();
    try {
      await page.goto(`${dashboard.url}/`);
      await until(async () => (await text('#process-count')) === '2', 'two processes on the page', PATIENCE);
      await until(async () => Number(await text('#throughput-total')) > 0, 'a non-zero throughput', PATIENCE);
      const budgetMax = ready.reduce((n, r) => n + r.budgetMax, 0);
      expect(budgetMax).toBe(8);
      expect(await page.locator('#fleet-budget').getAttribute('data-max')).toBe(String(budgetMax));
      expect(await text('#fleet-budget')).toMatch(new RegExp(`^\\d+ / ${budgetMax}$`));
      await until(
        async () => (await page.locator('#pool-rows tbody tr', { hasText: tenants[0]! }).count()) > 0,
        "a row for a tenant's pool",
        PATIENCE,
      );
      for (const { pid } of ready)
        await expect(page.locator(`#processes tr[data-pid="${pid}"]`).count()).resolves.toBe(1);
      // A few seconds of history, so that the screenshot's chart has a line to show.
      await until(
        async () =>
          (await page.locator('#chart polyline').first().getAttribute('points'))!.split(' ').length >= 6,
        'six points of throughput history',
        PATIENCE,
      );
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      expect(existsSync(SCREENSHOT)).toBe(true);

      const [doomed] = children;
      doomed!.kill('SIGKILL');
      // The page drops a process silent for three periods of one second: within 5 s.
      await until(
        async () => (await page.locator(`#processes tr[data-pid="${ready[0]!.pid}"]`).count()) === 0,
        'the killed process to leave the page',
        { timeoutMs: 5_000, intervalMs: 100 },
      );
      expect(await text('#process-count')).toBe('1');
      expect(await page.locator(`#processes tr[data-pid="${ready[1]!.pid}"]`).count()).toBe(1);
    } finally {
      feeding = false;
      await feed;
    }
  });

  it("shows a tenant's partition in bull-board, and its Retry button gets a failed job run by the fleet", async () => {
    const tenant = tenants[2]!;
    const id = await engine.enqueue(queue, { tenant, name: 'flaky', data: { fail: true } });
    await until(
      async () => (await engine.getJob(queue, tenant, id))?.state === 'failed',
      'the job to fail',
      PATIENCE,
    );
    const partition = `${queue}.${tenant}`;
    // Search the tenant from the fleet page: it opens the partition in bull-board.
    await page.goto(`${dashboard.url}/`);
    await page.fill('#search-tenant', tenant);
    await page.click('#search button[type=submit]');
    await page.waitForURL(`**/queues/queue/${encodeURIComponent(partition)}`);
    await page.goto(`${dashboard.url}/queues/queue/${encodeURIComponent(partition)}?status=failed`);
    await page.getByText(partition).first().waitFor();
    const card = page
      .locator('div', { hasText: /planned failure/ })
      .filter({ hasText: 'flaky' })
      .last();
    await card.waitFor();
    await redis.set(healKey, '1');
    const runsBefore = (await redis.lrange(runsKey, 0, -1)).filter((line) => line.includes(id)).length;
    // The job card's first action is Retry (an icon button: the circular arrows).
    const retry = page
      .locator('button')
      .filter({ has: page.locator('svg path[d^="M3 12a9 9 0 0 1 9-9"]') })
      .filter({ hasNotText: 'Retry all' })
      .first();
    await retry.click();
    const confirm = page.getByRole('button', { name: /^(confirm|retry|yes)$/i });
    if (await confirm.count()) await confirm.first().click();
    await until(
      async () => (await engine.getJob(queue, tenant, id))?.state === 'completed',
      'the retried job to complete',
      PATIENCE,
    );
    const runs = (await redis.lrange(runsKey, 0, -1)).filter((line) => line.includes(id));
    expect(runs.length).toBe(runsBefore + 1);
    // Run by the surviving fleet process.
    expect(JSON.parse(runs.at(-1)!).pid).toBe(ready[1]!.pid);
  });
});
