/**
 * `tenant-fleet dashboard`, `tenant-fleet status` and the snapshots of `tenant-fleet
 * worker`, run as the built command: the dashboard and status see the worker process, guards its routes with
 * FLEET_DASHBOARD_TOKEN, refuses a non-loopback host without one, and both stop with
 * exit 0 on a signal.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deletePrefix } from '../queue/engines.js';
import { REDIS_URL, tempDir, uniqueName } from '../support/services.js';
import { until } from '../support/wait.js';
import { openRegistry, type RegistryFixture } from '../worker/support.js';
import { ROOT, runCli, startCli } from './support.js';

const TOKEN = 'cli-dashboard-token';

describe('tenant-fleet dashboard', () => {
  let reg: RegistryFixture;
  let tenant = '';
  const prefix = uniqueName('fleetcli-dash');
  const cwd = tempDir('tenant-fleet-cli-dashboard-');

  beforeAll(async () => {
    reg = await openRegistry();
    tenant = (await reg.addTenants(1, {}, 'cli'))[0]!;
    writeFileSync(
      join(cwd, 'handlers.mjs'),
      `import { defineHandlers } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/src/index.js')).href)};
export default defineHandlers({ reports: async (_job, ctx) => { await ctx.db.query('select 1'); } });
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
      }),
    );
  });

  afterAll(async () => {
    await deletePrefix(prefix);
    await reg?.cleanup();
    rmSync(cwd, { recursive: true, force: true });
  });

  it('refuses a non-loopback host without a token, with exit 2 naming FLEET_DASHBOARD_TOKEN', async () => {
    const run = await runCli(['dashboard', '--host', '0.0.0.0', '--port', '0'], { cwd });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/FLEET_DASHBOARD_TOKEN/);
  });

  it('status with no worker running says where the queues come from', async () => {
    const status = await runCli(['status'], { cwd });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^processes: 0$/m);
    expect(status.stdout).toMatch(
      /^queues:\n {2}none reported by a live worker: name one with --queue <name>$/m,
    );
  });

  it("shows the worker process's snapshot behind the token, and both stop with exit 0", async () => {
    const worker = startCli(['worker', '--handlers', './handlers.mjs', '--no-prewarm'], { cwd });
    const dashboard = startCli(['dashboard', '--port', '0', '--queue', 'reports'], {
      cwd,
      env: { FLEET_DASHBOARD_TOKEN: TOKEN },
    });
    try {
      await until(() => /dashboard at http:\/\/127\.0\.0\.1:\d+\//.test(dashboard.stdout()), 'the address');
      const url = /dashboard at (http:\/\/127\.0\.0\.1:\d+)\//.exec(dashboard.stdout())![1]!;
      expect((await fetch(`${url}/api/fleet`)).status).toBe(401);
      const enqueued = await runCli(['enqueue', 'reports', tenant, 'render'], { cwd });
      expect(enqueued.code).toBe(0);
      const auth = { authorization: `Bearer ${TOKEN}` };
      await until(
        async () => {
          const page = (await (await fetch(`${url}/api/fleet`, { headers: auth })).json()) as {
            processes: { pid: number }[];
            queues: Record<string, { completed: number }>;
          };
          return (
            page.processes.some((p) => p.pid === worker.child.pid) && page.queues.reports?.completed === 1
          );
        },
        'the worker process and its completed job on /api/fleet',
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      const metrics = await (await fetch(`${url}/metrics`, { headers: auth })).text();
      expect(metrics).toMatch(/^fleet_jobs_completed_total\{queue="reports"\} 1$/m);
      expect(metrics).toMatch(/^fleet_processes 1$/m);
      // `status` prints the same aggregate in the terminal.
      const status = await runCli(['status', '--json', '--tenant', tenant], { cwd });
      expect(status.code).toBe(0);
      const summary = JSON.parse(status.stdout) as {
        processes: { pid: number }[];
        queues: Record<string, { completed: number }>;
        partitions: { queue: string; tenant: string; completed: number }[];
      };
      expect(summary.processes.map((p) => p.pid)).toEqual([worker.child.pid]);
      expect(summary.queues.reports?.completed).toBe(1);
      expect(summary.partitions).toEqual([
        expect.objectContaining({ queue: 'reports', tenant, completed: 1 }),
      ]);
      const text = await runCli(['status'], { cwd });
      expect(text.stdout).toMatch(/^processes: 1$/m);
      // The budget counts open connections; in use is a part of them.
      expect(text.stdout).toMatch(/ {2}connections \d+\/\d+ open, \d+ in use {2}waiters \d+/);
      expect(text.stdout).toMatch(/^ {2}reports {2}waiting 0 .* completed 1 {2}failed 0/m);
      expect(text.stdout).not.toMatch(/redis:\/\/|postgres:\/\//);
      expect((await runCli(['status', '--tenant', 'Not A Slug'], { cwd })).code).toBe(2);
      worker.child.kill('SIGINT');
      dashboard.child.kill('SIGTERM');
      expect(await worker.exit).toBe(0);
      expect(await dashboard.exit).toBe(0);
    } finally {
      for (const run of [worker, dashboard]) if (run.child.exitCode === null) run.child.kill('SIGKILL');
    }
  });
});
