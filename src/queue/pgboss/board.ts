/**
 * The pg-boss engine's partitions as a job board (the dashboard's bull-board adapter
 * reads and acts through it): jobs of one partition by state, a page at a time, and the
 * actions bull-board offers — retry a failed job, promote a delayed one, remove a job,
 * clean finished ones. Straight on the engine's tables, over a small pool of its own, as
 * the BullMQ adapter goes through BullMQ's own `Queue`; a retried or promoted job wakes
 * the fleet's workers by the engine's NOTIFY.
 */
import pg from 'pg';
import type { JobInfo } from '../engine.js';
import { type JobRow, toJobInfo } from './rows.js';
import { wakeChannel } from './schema.js';

/** The states a board lists, as the engine names them. */
export type BoardState = 'waiting' | 'delayed' | 'active' | 'completed' | 'failed';

const WHERE: Record<BoardState, string> = {
  waiting: "state < 'active' AND start_after <= now() ORDER BY priority DESC, fleet_seq",
  delayed: "state < 'active' AND start_after > now() ORDER BY start_after, fleet_seq",
  active: "state = 'active' ORDER BY started_on DESC",
  completed: "state = 'completed' ORDER BY completed_on DESC",
  failed: "state > 'completed' ORDER BY completed_on DESC",
};

const COLUMNS = `id::text, fleet_key, fleet_name, data, state::text, start_after <= now() AS due, retry_count,
  retry_limit, priority, (extract(epoch FROM created_on) * 1000)::float8 AS created_ms,
  (extract(epoch FROM completed_on) * 1000)::float8 AS completed_ms, fleet_batch, output, fleet_error,
  (extract(epoch FROM start_after) * 1000)::float8 AS due_ms`;

/** A job on the board: the engine's view, plus the row's uuid and when it falls due. */
export interface BoardJob extends JobInfo {
  uuid: string;
  dueAt: number;
}

/** Reads and acts on the partitions of one pg-boss engine's schema. */
export class PgBossBoard {
  readonly #pool: pg.Pool;
  readonly #s: string;
  #closed: Promise<void> | null = null;

  /** `schema` is the engine's (checked by its options). */
  constructor(database: string, schema: string) {
    this.#s = schema;
    this.#pool = new pg.Pool({ connectionString: database, max: 2, application_name: 'tenant-fleet:board' });
    this.#pool.on('error', () => {});
  }

  /** Jobs `start`…`end` (inclusive; -1: to the last) of a partition in `state`, in bull-board's order. */
  async jobs(
    queue: string,
    tenant: string,
    state: BoardState,
    start: number,
    end: number,
  ): Promise<BoardJob[]> {
    const limit = end < 0 ? 'ALL' : String(Math.max(0, end - start + 1));
    const { rows } = await this.#pool.query<JobRow & { due_ms: number }>(
      `SELECT ${COLUMNS} FROM ${this.#s}.job WHERE name = $1 AND singleton_key = $2 AND ${WHERE[state]}
       LIMIT ${limit} OFFSET $3`,
      [queue, tenant, Math.max(0, start)],
    );
    return rows.map((row) => this.#job(queue, tenant, row));
  }

  /** One job by its row's uuid, or null. */
  async job(queue: string, tenant: string, uuid: string): Promise<BoardJob | null> {
    const { rows } = await this.#pool.query<JobRow & { due_ms: number }>(
      `SELECT ${COLUMNS} FROM ${this.#s}.job WHERE name = $1 AND id = $2::uuid AND singleton_key = $3`,
      [queue, uuid, tenant],
    );
    return rows[0] ? this.#job(queue, tenant, rows[0]) : null;
  }

  /** Runs a failed job again with its attempts afresh; false when it is not failed (any more). */
  async retry(queue: string, tenant: string, uuid: string): Promise<boolean> {
    return this.#wake(
      `UPDATE ${this.#s}.job SET state = 'retry', retry_count = 0, fleet_stalled = 0, start_after = now(),
         started_on = NULL, completed_on = NULL, output = NULL
       WHERE name = $1 AND id = $2::uuid AND singleton_key = $3 AND state > 'completed'`,
      [queue, uuid, tenant],
    );
  }

  /** Makes a delayed job ready now; false when it is not delayed (any more). */
  async promote(queue: string, tenant: string, uuid: string): Promise<boolean> {
    return this.#wake(
      `UPDATE ${this.#s}.job SET start_after = now()
       WHERE name = $1 AND id = $2::uuid AND singleton_key = $3 AND state < 'active' AND start_after > now()`,
      [queue, uuid, tenant],
    );
  }

  /** Removes a job in any state (a worker running it finds its lock lost). */
  async remove(queue: string, tenant: string, uuid: string): Promise<boolean> {
    const result = await this.#pool.query(
      `DELETE FROM ${this.#s}.job WHERE name = $1 AND id = $2::uuid AND singleton_key = $3`,
      [queue, uuid, tenant],
    );
    return (result.rowCount ?? 0) > 0;
  }

  /** Removes a partition's completed or failed jobs that finished more than `graceMs` ago. */
  async clean(
    queue: string,
    tenant: string,
    state: 'completed' | 'failed',
    graceMs: number,
  ): Promise<number> {
    const result = await this.#pool.query(
      `DELETE FROM ${this.#s}.job WHERE name = $1 AND singleton_key = $2
         AND ${state === 'completed' ? "state = 'completed'" : "state > 'completed'"}
         AND completed_on < now() - make_interval(secs => $3::bigint / 1000.0)`,
      [queue, tenant, graceMs],
    );
    return result.rowCount ?? 0;
  }

  /** Closes the board's pool; idempotent. */
  close(): Promise<void> {
    this.#closed ??= this.#pool.end().catch(() => {});
    return this.#closed;
  }

  /** Runs `update` ($1 is the queue) and NOTIFYs the queue's waiters when it changed a row. */
  async #wake(update: string, values: unknown[]): Promise<boolean> {
    const { rows } = await this.#pool.query<{ n: number }>(
      `WITH changed AS (${update} RETURNING 1), woken AS (
         SELECT pg_notify('${wakeChannel(this.#s)}', $1::text) FROM changed LIMIT 1)
       SELECT (SELECT count(*)::int FROM changed) AS n, (SELECT count(*) FROM woken) AS w`,
      values,
    );
    return rows[0]!.n > 0;
  }

  #job(queue: string, tenant: string, row: JobRow & { due_ms: number }): BoardJob {
    return { ...toJobInfo(queue, tenant, row), uuid: row.id, dueAt: Math.round(row.due_ms) };
  }
}
