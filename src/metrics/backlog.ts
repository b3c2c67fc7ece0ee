/**
 * Backlog by tenant, read from the engine: the ready index lists the tenants that may
 * have jobs waiting, and each one's counts say how many. Bounded: at most `maxTenants`
 * partitions are counted per queue, `CONCURRENCY` at a time.
 */
import type { QueueEngine } from '../queue/engine.js';

const CONCURRENCY = 256;

/** A tenant's backlog in one queue. */
export interface TenantBacklog {
  queue: string;
  tenant: string;
  waiting: number;
  active: number;
  delayed: number;
  failed: number;
}

/** The backlog of one queue. */
export interface QueueBacklog {
  queue: string;
  /** Tenants listed as ready (may exceed the tenants counted). */
  readyTenants: number;
  /** Waiting jobs over the tenants counted. */
  waiting: number;
  /** The tenants counted, most waiting first. */
  tenants: TenantBacklog[];
}

/** Reads the backlog of `queue`: the first `maxTenants` ready tenants, counted. */
export async function readBacklog(
  engine: QueueEngine,
  queue: string,
  maxTenants = 2000,
): Promise<QueueBacklog> {
  const ready = await engine.readyTenants(queue);
  const counted = ready.slice(0, maxTenants);
  const tenants: TenantBacklog[] = [];
  for (let i = 0; i < counted.length; i += CONCURRENCY) {
    const batch = counted.slice(i, i + CONCURRENCY);
    const counts = await Promise.all(batch.map((tenant) => engine.counts(queue, tenant)));
    counts.forEach((c, j) => {
      tenants.push({
        queue,
        tenant: batch[j]!,
        waiting: c.waiting,
        active: c.active,
        delayed: c.delayed,
        failed: c.failed,
      });
    });
  }
  tenants.sort((a, b) => b.waiting - a.waiting || a.tenant.localeCompare(b.tenant));
  return { queue, readyTenants: ready.length, waiting: tenants.reduce((n, t) => n + t.waiting, 0), tenants };
}
