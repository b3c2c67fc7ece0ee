/**
 * `npm start` (the demo) serves the dashboard on 127.0.0.1 and prints its address: the
 * fleet page's API shows the demo's one process and its completed jobs, read from the
 * in-process snapshots of the memory engine, and bull-board at `/queues` lists the demo's
 * partitions with their counts, read-only. With its port taken, the demo runs without it.
 */
import { rmSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { closedPort } from '../../support/net.js';
import { tempDir } from '../../support/services.js';
import { until } from '../../support/wait.js';
import { startCli } from '../support.js';

describe('npm start (tenant-fleet demo) with its dashboard', () => {
  const cwd = tempDir('tenant-fleet-demo-dashboard-');
  afterAll(() => rmSync(cwd, { recursive: true, force: true }));

  it('prints the dashboard address, whose /api/fleet shows the demo process and its jobs', async () => {
    const port = await closedPort();
    const demo = startCli(['demo', '--dashboard-port', String(port)], { cwd });
    try {
      await until(
        () => demo.stdout().includes(`dashboard: http://127.0.0.1:${port}/`),
        'the dashboard address',
        {
          timeoutMs: 30_000,
        },
      );
      await until(
        async () => {
          const page = (await (await fetch(`http://127.0.0.1:${port}/api/fleet`)).json()) as {
            engine: string;
            processes: { pid: number }[];
            queues: Record<string, { completed: number }>;
            pools: { budget: { max: number } };
          };
          return (
            page.engine === 'memory' &&
            page.processes.length === 1 &&
            page.processes[0]!.pid === demo.child.pid &&
            Object.values(page.queues).some((q) => q.completed > 0) &&
            page.pools.budget.max === 10
          );
        },
        'the demo process with completed jobs and its budget of 10',
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(200);
      const queues = Object.keys(
        ((await (await fetch(`http://127.0.0.1:${port}/api/fleet`)).json()) as { queues: object }).queues,
      );
      type Listed = { name: string; readOnlyMode: boolean; counts: Record<string, number> };
      const listed = async () =>
        ((await (await fetch(`http://127.0.0.1:${port}/queues/api/queues`)).json()) as { queues: Listed[] })
          .queues;
      await until(
        async () => (await listed()).some((q) => (q.counts.completed ?? 0) > 0),
        "the demo's partitions in bull-board",
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      for (const q of await listed()) {
        expect(queues.some((queue) => q.name.startsWith(`${queue}.`))).toBe(true);
        expect(q.readOnlyMode).toBe(true);
        expect(Object.keys(q.counts).sort()).toEqual(['active', 'completed', 'delayed', 'failed', 'waiting']);
      }
      demo.child.kill('SIGINT');
      expect(await demo.exit).toBe(0);
      expect(demo.stdout()).toMatch(/demo stopped cleanly/);
    } finally {
      if (demo.child.exitCode === null) demo.child.kill('SIGKILL');
    }
  });

  it('runs without it when its port is taken, and says which flag picks another', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    const demo = startCli(['demo', '--dashboard-port', String(port)], { cwd });
    try {
      await until(() => demo.stdout().includes('dashboard: not started'), 'the dashboard line', {
        timeoutMs: 30_000,
      });
      expect(demo.stdout()).toMatch(
        /dashboard: not started \(.*EADDRINUSE.*\); --dashboard-port <n> picks another port/,
      );
      demo.child.kill('SIGINT');
      expect(await demo.exit).toBe(0);
    } finally {
      if (demo.child.exitCode === null) demo.child.kill('SIGKILL');
      taken.close();
    }
  });
});
