/**
 * Configuration loading: defaults, a JSON / .mjs / .ts file, FLEET_* environment variables
 * and flags, each overriding the one before; errors that name the key, its source, what
 * was expected and what was got, without a URL password.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/cli/config/config.js';
import { fleetBudgetOptions } from '../../../src/cli/config/fleet-budget-config.js';
import { ConfigError } from '../../../src/reporting/errors.js';
import { tempDir } from '../../support/services.js';

const dirs: string[] = [];
const fresh = () => {
  const dir = tempDir('fleet-config-');
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('loadConfig', () => {
  it('fills in the defaults when there is nothing', async () => {
    const { config, file } = await loadConfig({ cwd: fresh(), env: {} });
    expect(file).toBeNull();
    expect(config).toMatchObject({
      engine: 'bullmq',
      redisUrl: 'redis://127.0.0.1:6379',
      prefix: 'fleet',
      budget: 20,
      worker: { startup: 'blocking', prewarm: true, shutdownTimeoutMs: 30_000 },
      schedules: [],
    });
    expect(config.registryUrl).toBeUndefined();
    // Unset, so the worker uses the library's own default.
    expect(config.worker.concurrency).toBeUndefined();
  });

  it('layers file < environment < flags', async () => {
    const cwd = fresh();
    writeFileSync(
      join(cwd, 'fleet.config.json'),
      JSON.stringify({
        registryUrl: 'sqlite:file.db',
        prefix: 'from-file',
        budget: 5,
        engine: 'memory',
      }),
    );
    const { config, file } = await loadConfig({
      cwd,
      env: { FLEET_PREFIX: 'from-env', FLEET_BUDGET: '7' },
      flags: { budget: '9' },
    });
    expect(file).toBe(join(cwd, 'fleet.config.json'));
    expect(config).toMatchObject({
      registryUrl: 'sqlite:file.db',
      engine: 'memory',
      prefix: 'from-env',
      budget: 9,
    });
  });

  it('reads a .mjs and a .ts config file (default export), with schedules', async () => {
    const cwd = fresh();
    writeFileSync(
      join(cwd, 'fleet.config.mjs'),
      "export default { registryUrl: 'sqlite:a.db', schedules: [{ id: 'nightly', cron: '0 3 * * *', queue: 'reports', name: 'nightly' }] };",
    );
    const mjs = await loadConfig({ cwd, env: {} });
    expect(mjs.config.schedules).toEqual([
      { id: 'nightly', cron: '0 3 * * *', queue: 'reports', name: 'nightly', catchUp: 'latest' },
    ]);
    writeFileSync(
      join(cwd, 'custom.ts'),
      "const budget: number = 3;\nexport default { registryUrl: 'sqlite:b.db', budget };\n",
    );
    const ts = await loadConfig({ cwd, env: {}, configPath: 'custom.ts' });
    expect(ts.config).toMatchObject({ registryUrl: 'sqlite:b.db', budget: 3 });
  });

  it('bounds durations by what a timer holds and sizes by the library’s limits', async () => {
    for (const [config, option] of [
      [{ acquireTimeoutMs: 3_000_000_000 }, 'acquireTimeoutMs'],
      [{ worker: { shutdownTimeoutMs: 3_000_000_000 } }, 'worker.shutdownTimeoutMs'],
      [{ worker: { concurrency: 10_001 } }, 'worker.concurrency'],
      [{ worker: { jobsPerTurn: 1_001 } }, 'worker.jobsPerTurn'],
      [{ budget: 10_001 }, 'budget'],
      [{ maxCachedPools: 10_001 }, 'maxCachedPools'],
      [{ fleetBudget: { perServer: { 'pg-a:5432': 0 } } }, 'fleetBudget.perServer.pg-a:5432'],
      [{ fleetBudget: { redisUrl: 'redis://x' } }, 'fleetBudget'],
      [{ fleetBudget: { defaultPerServer: 5, leaseTtlMs: 10 } }, 'fleetBudget.leaseTtlMs'],
      [{ fleetBudget: { defaultPerServer: 5, lease: 10 } }, 'fleetBudget'],
    ] as const) {
      const cwd = fresh();
      writeFileSync(join(cwd, 'fleet.config.json'), JSON.stringify(config));
      const error = await loadConfig({ cwd, env: {} }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).option).toBe(option);
    }
  });

  it('reads the fleet budget from the file, with --server-budget / FLEET_SERVER_BUDGET limits over it', async () => {
    const cwd = fresh();
    writeFileSync(
      join(cwd, 'fleet.config.json'),
      JSON.stringify({ fleetBudget: { perServer: { 'pg-a:5432': 90 }, leaseTtlMs: 5_000 } }),
    );
    const file = await loadConfig({ cwd, env: {} });
    expect(file.config.fleetBudget).toEqual({ perServer: { 'pg-a:5432': 90 }, leaseTtlMs: 5_000 });
    expect(fleetBudgetOptions(file.config, () => 'postgres://unused')).toEqual({
      redis: 'redis://127.0.0.1:6379',
      prefix: 'fleet:budget',
      perServer: { 'pg-a:5432': 90 },
      leaseTtlMs: 5_000,
    });
    const env = await loadConfig({ cwd, env: { FLEET_SERVER_BUDGET: 'pg-b:5433=12, *=7' } });
    expect(env.config.fleetBudget).toEqual({
      perServer: { 'pg-b:5433': 12 },
      defaultPerServer: 7,
      leaseTtlMs: 5_000,
    });
    const flag = await loadConfig({ cwd: fresh(), env: {}, flags: { fleetBudget: '*=3' } });
    expect(flag.config.fleetBudget).toEqual({ defaultPerServer: 3 });
    expect(
      fleetBudgetOptions((await loadConfig({ cwd: fresh(), env: {} })).config, () => 'postgres://unused'),
    ).toBeUndefined();
  });

  it('keeps the fleet budget in the pg-boss database on the pgboss engine unless the budget names a Redis', async () => {
    const pgboss = 'postgres://app@db.internal:5432/jobs';
    const onPgboss = await loadConfig({
      cwd: fresh(),
      env: { FLEET_ENGINE: 'pgboss', DATABASE_URL: pgboss, FLEET_SERVER_BUDGET: '*=7' },
    });
    expect(fleetBudgetOptions(onPgboss.config, () => pgboss)).toEqual({
      postgres: pgboss,
      prefix: 'fleet_budget',
      defaultPerServer: 7,
    });
    const cwd = fresh();
    writeFileSync(
      join(cwd, 'fleet.config.json'),
      JSON.stringify({
        engine: 'pgboss',
        fleetBudget: { redisUrl: 'redis://cache:6379', defaultPerServer: 7 },
      }),
    );
    const named = await loadConfig({ cwd, env: {} });
    expect(fleetBudgetOptions(named.config, () => pgboss)).toMatchObject({
      redis: 'redis://cache:6379',
      prefix: 'fleet:budget',
    });
    writeFileSync(
      join(cwd, 'fleet.config.json'),
      JSON.stringify({
        fleetBudget: { redisUrl: 'redis://cache:6379', postgresUrl: pgboss, defaultPerServer: 7 },
      }),
    );
    const both = await loadConfig({ cwd, env: {} }).catch((e: unknown) => e);
    expect(both).toBeInstanceOf(ConfigError);
    expect((both as ConfigError).option).toBe('fleetBudget.postgresUrl');
  });

  it('names the key, its source, the expectation and the value', async () => {
    const cwd = fresh();
    writeFileSync(join(cwd, 'fleet.config.json'), JSON.stringify({ worker: { concurrency: 0 } }));
    const error = await loadConfig({ cwd, env: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).option).toBe('worker.concurrency');
    expect((error as ConfigError).message).toMatch(
      /`worker\.concurrency` \(from .*fleet\.config\.json\).*>=1.*got 0/,
    );

    const env = await loadConfig({ cwd: fresh(), env: { FLEET_ENGINE: 'kafka' } }).catch((e: unknown) => e);
    expect((env as ConfigError).message).toMatch(/`engine` \(from env FLEET_ENGINE\).*got "kafka"/);

    const flag = await loadConfig({ cwd: fresh(), env: {}, flags: { budget: 'lots' } }).catch(
      (e: unknown) => e,
    );
    expect((flag as ConfigError).message).toMatch(/`budget` \(from flag --budget\).*got "lots"/);
  });

  it('never repeats a password from a bad URL', async () => {
    const error = (await loadConfig({
      cwd: fresh(),
      env: { FLEET_REDIS_URL: 'http://user:hunter2@cache:6379' },
    }).catch((e: unknown) => e)) as ConfigError;
    expect(error.option).toBe('redisUrl');
    expect(error.message).not.toContain('hunter2');
  });

  it('rejects unknown keys, a schedule without a queue, and a missing --config file', async () => {
    const cwd = fresh();
    writeFileSync(
      join(cwd, 'fleet.config.json'),
      JSON.stringify({ schedules: [{ id: 'x', cron: '* * * * *', name: 'n' }] }),
    );
    await expect(loadConfig({ cwd, env: {} })).rejects.toThrow(/`schedules\.0\.queue`/);
    writeFileSync(join(cwd, 'fleet.config.json'), JSON.stringify({ registyUrl: 'sqlite:x' }));
    await expect(loadConfig({ cwd, env: {} })).rejects.toThrow(/unknown key `registyUrl`/);
    await expect(loadConfig({ cwd, env: {}, configPath: 'nope.json' })).rejects.toMatchObject({
      option: 'config',
    });
  });
});
