/**
 * The zero-setup demo (`npm start` runs `tenant-fleet demo`), started as a child process of
 * the built CLI in a fresh folder: it processes jobs for every one of its 20 tenants (a row
 * in each tenant's own SQLite database) within 30 s, exits 0 on SIGINT, and a second run
 * reuses `.fleet/`. The same on the BullMQ engine.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { DEMO_TENANTS } from '../../../src/cli/demo/setup.js';
import { deletePrefix } from '../../queue/engines.js';
import { REDIS_URL, tempDir, uniqueName } from '../../support/services.js';
import { until } from '../../support/wait.js';
import { startCli } from '../support.js';

const ALL_SERVED = /every demo tenant has processed jobs \(20\/20\)/;
// The acceptance bound: every tenant served within 30 s of the start (polled every 50 ms).
const THIRTY_SECONDS = { timeoutMs: 30_000 };

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function rowsPerTenant(cwd: string): Map<string, number> {
  const rows = new Map<string, number>();
  for (const slug of DEMO_TENANTS) {
    const db = new Database(join(cwd, '.fleet', 'tenants', `${slug}.db`), { readonly: true });
    try {
      rows.set(slug, (db.prepare('SELECT COUNT(*) AS n FROM report_runs').get() as { n: number }).n);
    } finally {
      db.close();
    }
  }
  return rows;
}

async function runDemoUntilServed(
  cwd: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<string> {
  const demo = startCli(['demo', '--stats-interval', '500', ...args], { cwd, env });
  try {
    await until(() => ALL_SERVED.test(demo.stdout()), 'every demo tenant to process a job', THIRTY_SECONDS);
    demo.child.kill('SIGINT');
    expect(await demo.exit).toBe(0);
  } catch (err) {
    demo.child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\nstdout:\n${demo.stdout()}\nstderr:\n${demo.stderr()}`);
  }
  expect(demo.stdout()).toMatch(/demo stopped cleanly/);
  return demo.stdout();
}

async function keysUnder(prefix: string): Promise<number> {
  const redis = new Redis(REDIS_URL);
  try {
    let count = 0;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      count += keys.length;
    } while (cursor !== '0');
    return count;
  } finally {
    await redis.quit();
  }
}

describe('npm start (tenant-fleet demo)', () => {
  it('serves all 20 tenants on the memory engine, stops on SIGINT with 0, and a rerun reuses .fleet/', async () => {
    const cwd = tempDir('tenant-fleet-demo-');
    dirs.push(cwd);
    const first = await runDemoUntilServed(cwd);
    expect(first).toMatch(/20 tenants \(20 new\)/);
    expect(first).toMatch(/migrations: 20 tenants migrated/);
    expect(first).toMatch(/engine: memory/);
    expect(first).toMatch(/\[stats\] \d+ jobs\/s: .*pool \d+\/10 open/);
    // Each stats line fits a terminal.
    const statsLines = first.split('\n').filter((line) => line.startsWith('[stats]'));
    expect(statsLines.length).toBeGreaterThan(0);
    for (const line of statsLines) expect(line.length, line).toBeLessThanOrEqual(120);
    const afterFirst = rowsPerTenant(cwd);
    for (const slug of DEMO_TENANTS) expect(afterFirst.get(slug), slug).toBeGreaterThan(0);

    const second = await runDemoUntilServed(cwd);
    expect(second).toMatch(/20 tenants \(0 new\)/);
    expect(second).toMatch(/migrations: 0 tenants migrated, 20 up to date, 0 failed/);
    const afterSecond = rowsPerTenant(cwd);
    for (const slug of DEMO_TENANTS)
      expect(afterSecond.get(slug)!, slug).toBeGreaterThan(afterFirst.get(slug)!);
  });

  it('runs on BullMQ with --engine bullmq; --keep leaves its keys, which the next run takes back and removes', async () => {
    const cwd = tempDir('tenant-fleet-demo-bullmq-');
    dirs.push(cwd);
    const prefix = uniqueName('fleetdemo');
    const args = ['--engine', 'bullmq', '--redis-url', REDIS_URL, '--prefix', prefix];
    try {
      const kept = await runDemoUntilServed(cwd, [...args, '--keep']);
      expect(kept).toMatch(new RegExp(`engine: bullmq \\(prefix ${prefix}\\)`));
      expect(kept).toMatch(new RegExp(`left the demo's keys under ${prefix} on Redis \\(--keep\\)`));
      expect(await keysUnder(prefix)).toBeGreaterThan(0);
      for (const [slug, n] of rowsPerTenant(cwd)) expect(n, slug).toBeGreaterThan(0);
      // The prefix holds the earlier run's keys, marked as the demo's: the demo runs there
      // again and cleans up after itself.
      const out = await runDemoUntilServed(cwd, args);
      expect(out).toMatch(new RegExp(`removed the demo's [1-9]\\d* keys under ${prefix} on Redis`));
      expect(await keysUnder(prefix)).toBe(0);
    } finally {
      await deletePrefix(prefix);
    }
  });

  it("refuses a prefix holding keys it did not write (a real fleet's, named by FLEET_PREFIX), enqueueing nothing", async () => {
    const cwd = tempDir('tenant-fleet-demo-shared-');
    dirs.push(cwd);
    const prefix = uniqueName('fleetreal');
    const redis = new Redis(REDIS_URL);
    try {
      await redis.set(`${prefix}:someone-elses`, 'keep me');
      const demo = startCli(['demo', '--engine', 'bullmq', '--redis-url', REDIS_URL], {
        cwd,
        env: { FLEET_PREFIX: prefix },
      });
      expect(await demo.exit).toBe(2);
      expect(demo.stderr()).toContain(
        `Expected a Redis prefix of the demo's own, got "${prefix}" (from FLEET_PREFIX), which holds keys the demo did not write`,
      );
      // Nor did it write its files before refusing.
      expect(existsSync(join(cwd, '.fleet'))).toBe(false);
      expect(await keysUnder(prefix)).toBe(1);
      expect(await redis.get(`${prefix}:someone-elses`)).toBe('keep me');
    } finally {
      await deletePrefix(prefix);
      redis.disconnect();
    }
  });
});
