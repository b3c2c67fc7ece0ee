/**
 * `setTenantConcurrency` on Postgres, coalesced (../cap-batcher.ts): the caps set while a
 * statement is in flight (a worker seeing a thousand tenants for the first time sets each
 * one's cap, or lifts it) go out together as one statement. Each partition row is written, and each
 * queue woken (NOTIFY), only when its cap changes, so lifting caps that were never set
 * costs one read per tenant and no commit of its own.
 */
import type pg from 'pg';
import { type CapBatch, CapBatcher, settleCap } from '../cap-batcher.js';

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
  readonly #caps = new CapBatcher((batch) => this.#send(batch));

  constructor(pool: pg.Pool, schema: string, channel: string) {
    this.#pool = pool;
    this.#sql = setCapsSql(schema, channel);
  }

  /** Resolves once the caps (null lifts) of checked tenants of a checked queue are committed. */
  set(queue: string, caps: ReadonlyArray<readonly [string, number | null]>): Promise<void> {
    return this.#caps.set(queue, caps);
  }

  /** Resolves once no cap is pending or being written. */
  drain(): Promise<void> {
    return this.#caps.drain();
  }

  async #send(batch: CapBatch): Promise<void> {
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
    }
    for (const byTenant of batch.values())
      for (const pending of byTenant.values()) settleCap(pending, failure);
  }
}
