/**
 * `setTenantConcurrency` on Postgres, coalesced: the caps set while a statement is in
 * flight (a worker seeing a thousand tenants for the first time sets each one's cap, or
 * lifts it) go out together as one statement. Each partition row is written, and each
 * queue woken (NOTIFY), only when its cap changes, so lifting caps that were never set
 * costs one read per tenant and no commit of its own.
 */
import type pg from 'pg';

interface PendingCap {
  cap: number | null;
  waiters: Array<{ resolve: () => void; reject: (error: unknown) => void }>;
}

/** The statement: $1 queues, $2 tenants, $3 caps (null lifts), one row per partition. */
function setCapsSql(s: string, channel: string): string {
  return `
WITH input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::int[]) AS i(queue, tenant, cap)
), changed AS (
  INSERT INTO ${s}.fleet_partition (queue, tenant, cap)
  SELECT i.queue, i.tenant, i.cap FROM input i
  WHERE NOT EXISTS (SELECT 1 FROM ${s}.fleet_partition p
    WHERE p.queue = i.queue AND p.tenant = i.tenant AND p.cap IS NOT DISTINCT FROM i.cap)
  ORDER BY i.queue, i.tenant
  ON CONFLICT (queue, tenant) DO UPDATE SET cap = excluded.cap
  RETURNING queue
)
SELECT pg_notify('${channel}', queue) FROM (SELECT DISTINCT queue FROM changed) c`;
}

/** Writes the caps of a schema's partitions, many per statement. */
export class CapWriter {
  readonly #pool: pg.Pool;
  readonly #sql: string;
  /** By queue, then tenant: the last cap asked for wins. */
  #pending = new Map<string, Map<string, PendingCap>>();
  #sending = false;
  #scheduled = false;
  #drained: Array<() => void> = [];

  constructor(pool: pg.Pool, schema: string, channel: string) {
    this.#pool = pool;
    this.#sql = setCapsSql(schema, channel);
  }

  /** Resolves once the cap (of a checked queue and tenant) is committed. */
  set(queue: string, tenant: string, cap: number | null): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let tenants = this.#pending.get(queue);
      if (tenants === undefined) {
        tenants = new Map();
        this.#pending.set(queue, tenants);
      }
      const pending = tenants.get(tenant) ?? { cap, waiters: [] };
      pending.cap = cap;
      pending.waiters.push({ resolve, reject });
      tenants.set(tenant, pending);
      this.#schedule();
    });
  }

  /** Resolves once no cap is pending or being written. */
  async drain(): Promise<void> {
    while (this.#pending.size > 0 || this.#sending) {
      if (!this.#sending) await this.#flush();
      else await new Promise<void>((resolve) => this.#drained.push(resolve));
    }
  }

  #schedule(): void {
    if (this.#scheduled || this.#sending) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    if (this.#pending.size === 0 || this.#sending) return;
    const batch = this.#pending;
    this.#pending = new Map();
    this.#sending = true;
    const queues: string[] = [];
    const tenants: string[] = [];
    const caps: Array<number | null> = [];
    for (const [queue, byTenant] of batch)
      for (const [tenant, pending] of byTenant) {
        queues.push(queue);
        tenants.push(tenant);
        caps.push(pending.cap);
      }
    let failure: { error: unknown } | undefined;
    try {
      await this.#pool.query(this.#sql, [queues, tenants, caps]);
    } catch (error) {
      failure = { error };
    } finally {
      this.#sending = false;
      for (const resolve of this.#drained.splice(0)) resolve();
      if (this.#pending.size > 0) this.#schedule();
    }
    for (const byTenant of batch.values())
      for (const { waiters } of byTenant.values())
        for (const waiter of waiters) failure ? waiter.reject(failure.error) : waiter.resolve();
  }
}
