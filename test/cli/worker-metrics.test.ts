/**
 * `tenant-fleet worker --metrics-port`, run as the built command: `/metrics` is this
 * process's metrics in Prometheus text (behind FLEET_DASHBOARD_TOKEN when set), `/health`
 * answers 200 while the worker fetches and 503 from the moment SIGTERM starts the
 * shutdown, while a running job still finishes; a non-loopback host needs the token.
 */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deletePrefix } from '../queue/engines.js';
import { parseExposition } from '../support/prometheus.js';
import { REDIS_URL, tempDir, uniqueName } from '../support/services.js';
import { until } from '../support/wait.js';
import { openRegistry, type RegistryFixture } from '../worker/support.js';
import { ROOT, runCli, startCli } from './support.js';

const TOKEN = 'worker-metrics-token';

describe('tenant-fleet worker --metrics-port', () => {
  let reg: RegistryFixture;
  let tenant = '';
  const prefix = uniqueName('fleetcli-wm');
  const cwd = tempDir('tenant-fleet-cli-worker-metrics-');
  const started = join(cwd, 'hold-started');
  const release = join(cwd, 'hold-release');

  beforeAll(async () => {
    reg = await openRegistry();
    tenant = (await reg.addTenants(1, {}, 'wm'))[0]!;
    writeFileSync(
      join(cwd, 'handlers.mjs'),
      `import { existsSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineHandlers } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/src/index.js')).href)};
export default defineHandlers({
  reports: async (job, ctx) => {
    await ctx.db.query('select 1');
    if (job.name !== 'hold') return;
    writeFileSync(${JSON.stringify(started)}, '');
    while (!existsSync(${JSON.stringify(release)})) await sleep(50);
  },
});
`,
    );
    writeFileSync(
      join(cwd, 'fleet.config.json'),
      JSON.stringify({
        registryUrl: reg.store.url,
        engine: 'bullmq',
        redisUrl: REDIS_URL,
        prefix,
        logLevel: 'warn',
        worker: { shutdownTimeoutMs: 60_000 },
      }),
    );
  });

  afterAll(async () => {
    await deletePrefix(prefix);
    await reg?.cleanup();
    rmSync(cwd, { recursive: true, force: true });
  });

  it('refuses a non-loopback --metrics-host without a token, with exit 2 naming FLEET_DASHBOARD_TOKEN', async () => {
    const run = await runCli(
      ['worker', '--handlers', './handlers.mjs', '--metrics-port', '0', '--metrics-host', '0.0.0.0'],
      { cwd },
    );
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/FLEET_DASHBOARD_TOKEN/);
  });

  it('serves its own /metrics and /health: 200 while fetching, 503 once SIGTERM starts the shutdown', async () => {
    const worker = startCli(
      ['worker', '--handlers', './handlers.mjs', '--no-prewarm', '--metrics-port', '0'],
      {
        cwd,
        env: { FLEET_DASHBOARD_TOKEN: TOKEN },
      },
    );
    try {
      await until(() => /metrics at http:\/\/127\.0\.0\.1:\d+\/metrics/.test(worker.stdout()), 'the address');
      const url = /metrics at (http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(worker.stdout())![1]!;
      const health = async () => {
        const answer = await fetch(`${url}/health`);
        return { status: answer.status, body: (await answer.json()) as { status: string } };
      };
      await until(async () => (await health()).status === 200, '/health to answer 200');
      expect((await health()).body).toEqual({ status: 'running' });
      // The token guards /metrics, never /health (probes carry no credentials).
      expect((await fetch(`${url}/metrics`)).status).toBe(401);
      const auth = { authorization: `Bearer ${TOKEN}` };
      const scrape = async () => {
        const answer = await fetch(`${url}/metrics`, { headers: auth });
        expect(answer.status).toBe(200);
        expect(answer.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
        return parseExposition(await answer.text());
      };

      expect((await runCli(['enqueue', 'reports', tenant, 'render'], { cwd })).code).toBe(0);
      await until(
        async () =>
          (await scrape()).samples.some(
            (s) => s.name === 'fleet_jobs_completed_total' && s.labels.queue === 'reports' && s.value === 1,
          ),
        'the completed job in /metrics',
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      const metrics = await scrape();
      const value = (name: string, labels: Record<string, string> = {}) =>
        metrics.samples.find(
          (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
        )?.value;
      expect(metrics.types.get('fleet_job_duration_seconds')).toBe('histogram');
      expect(value('fleet_job_duration_seconds_count', { queue: 'reports' })).toBe(1);
      expect(value('fleet_tenant_jobs_completed_total', { queue: 'reports', tenant })).toBe(1);
      expect(value('fleet_processes')).toBe(1);
      expect(value('fleet_pool_budget_max')).toBeGreaterThan(0);
      expect(value('fleet_pool_connections', { state: 'open' })).toBeGreaterThanOrEqual(1);
      // The backlog is the fleet's: a process leaves it out, so a sum over processes stays right.
      expect(metrics.types.has('fleet_queue_waiting')).toBe(false);
      expect((await fetch(`${url}/nowhere`)).status).toBe(404);

      // A job that runs until released: the shutdown waits for it, /health says 503 meanwhile.
      expect((await runCli(['enqueue', 'reports', tenant, 'hold'], { cwd })).code).toBe(0);
      await until(() => existsSync(started), 'the held job to start', { timeoutMs: 30_000 });
      expect((await health()).status).toBe(200);
      worker.child.kill('SIGTERM');
      await until(async () => (await health()).status === 503, '/health to answer 503 after SIGTERM');
      expect((await health()).body).toEqual({ status: 'closing' });
      expect(worker.child.exitCode).toBeNull();
      // Metrics are still served while the running job finishes.
      expect(value('fleet_processes')).toBe(1);
      expect((await scrape()).samples.some((s) => s.name === 'fleet_jobs_running' && s.value === 1)).toBe(
        true,
      );
      writeFileSync(release, '');
      expect(await worker.exit).toBe(0);
      await expect(fetch(`${url}/health`)).rejects.toThrow();
    } finally {
      if (worker.child.exitCode === null) worker.child.kill('SIGKILL');
    }
  });
});
