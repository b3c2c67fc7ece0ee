/**
 * `tenant-fleet status`: the dashboard's aggregate in the terminal: live worker
 * processes, throughput counters, backlog by tenant, failures and pool pressure, read
 * from the snapshots the workers publish and from the engine.
 */
import { Command } from 'commander';
import { cliLogger, configFor, print, printJson } from '../context.js';
import { engineFor } from '../engine-for.js';
import { integer } from '../parse.js';

interface StatusFlags {
  queue?: string;
  tenant?: string;
  top?: number;
  json?: boolean;
}

const ms = (n: number) => (n >= 1000 ? `${(n / 1000).toFixed(1)} s` : `${Math.round(n)} ms`);

/** The `status` command. */
export function statusCommand(): Command {
  return new Command('status')
    .description('print the live worker processes, throughput, backlog by tenant, failures and pool pressure')
    .option('--queue <name>', 'only this queue (also one no worker has reported yet)')
    .option('--tenant <slug>', "only this tenant's partitions and counts")
    .option('--top <n>', 'tenants per list', integer(1), 10)
    .option('--json', 'print the aggregate as JSON')
    .action(async (flags: StatusFlags, command: Command) => {
      const config = await configFor(command);
      cliLogger(config);
      const { checkQueueName, checkTenant } = await import('../../queue/job-input.js');
      const { snapshotStoreFor } = await import('../../metrics/store-for-engine.js');
      const { FleetView } = await import('../../../dashboard/fleet-view.js');
      const queue = flags.queue === undefined ? undefined : checkQueueName(flags.queue);
      const tenant = flags.tenant === undefined ? undefined : checkTenant(flags.tenant);
      const engine = await engineFor(config);
      const store = snapshotStoreFor(engine);
      try {
        const page = await new FleetView(engine, store, queue ? [queue] : [], flags.top ?? 10, 2000).read();
        const queues = Object.keys(page.backlog).filter((q) => queue === undefined || q === queue);
        const mine = <T extends { queue: string; tenant: string }>(rows: T[]) =>
          rows.filter((r) => queues.includes(r.queue) && (tenant === undefined || r.tenant === tenant));
        const partitions = tenant
          ? await Promise.all(
              queues.map(async (q) => ({ queue: q, tenant, ...(await engine.counts(q, tenant)) })),
            )
          : [];
        const { backlogTenants: _, throughput: __, ...rest } = page;
        const answer = {
          ...rest,
          queues: Object.fromEntries(Object.entries(page.queues).filter(([q]) => queues.includes(q))),
          tenants: mine(page.tenants),
          top: {
            backlog: mine(page.top.backlog),
            throughput: mine(page.top.throughput),
            failures: mine(page.top.failures),
            wait: mine(page.top.wait),
          },
          partitions,
        };
        if (flags.json) {
          printJson(answer);
          return;
        }
        print(`processes: ${page.processes.length}`);
        for (const p of page.processes)
          print(
            `  ${p.id}  pid ${p.pid}  v${p.version}  heartbeat ${ms(p.heartbeatAgeMs)} ago  running ${p.running}` +
              (p.pools
                ? `  connections ${p.pools.budget.open}/${p.pools.budget.max} open, ${p.pools.budget.inUse} in use  waiters ${p.pools.budget.waiting}`
                : ''),
          );
        print('queues:');
        // The queues listed are those the live workers report: the engine keeps no list.
        if (queues.length === 0) print('  none reported by a live worker: name one with --queue <name>');
        for (const q of queues) {
          const totals = page.queues[q];
          const backlog = page.backlog[q]!;
          print(
            `  ${q}  waiting ${backlog.waiting} (${backlog.readyTenants} tenants ready)` +
              (totals
                ? `  running ${totals.running}  completed ${totals.completed}  failed ${totals.failed}  retried ${totals.retried}`
                : ''),
          );
        }
        const list = (title: string, rows: string[]) => {
          if (rows.length === 0) return;
          print(`${title}:`);
          for (const row of rows) print(`  ${row}`);
        };
        list(
          'backlog by tenant',
          answer.top.backlog.map(
            (t) => `${t.queue}.${t.tenant}  waiting ${t.waiting}  active ${t.active}  failed ${t.failed}`,
          ),
        );
        list(
          'failures by tenant',
          answer.top.failures.map((t) => `${t.queue}.${t.tenant}  failed ${t.failed}  retried ${t.retried}`),
        );
        list(
          'partitions',
          partitions.map(
            (p) =>
              `${p.queue}.${p.tenant}  waiting ${p.waiting}  active ${p.active}  delayed ${p.delayed}  completed ${p.completed}  failed ${p.failed}`,
          ),
        );
        const { budget, acquireWaitMs, counters, breakersOpen, breakers } = page.pools;
        print(
          `pools: connections ${budget.open}/${budget.max} open, ${budget.inUse} in use, ${budget.idle} idle  waiters ${budget.waiting}  acquire wait p50 ${ms(acquireWaitMs.p50)} p99 ${ms(acquireWaitMs.p99)}  evictions ${counters.poolEvictions}  reclaims ${counters.reclaims}  open breakers ${breakersOpen}`,
        );
        list(
          'open breakers',
          breakers.map(
            (b) =>
              `${b.slug ?? '(shared schema pool)'}  failures ${b.failures}  retry at ${new Date(b.retryAt).toISOString()}  process ${b.process}`,
          ),
        );
      } finally {
        await store.close();
        await engine.close();
      }
    });
}
