/**
 * Process snapshots on Postgres, for a fleet with no Redis (the pg-boss engine): one row
 * per process in `<schema>.fleet_process` (the engine's schema), holding the snapshot as
 * JSON and when it expires; a reader lists the rows not yet expired and deletes the
 * others (a process that died), as the Redis store drops expired ids from its index.
 */
import pg from 'pg';
import { withSchemaLock } from '../queue/pgboss/schema.js';
import type { ProcessSnapshot } from './snapshot.js';
import type { SnapshotStore } from './snapshot-store.js';

/** Options of {@link PostgresSnapshotStore}. */
export interface PostgresSnapshotStoreOptions {
  /** A `postgres://` URL; the store opens (and closes) a pool of at most two connections. */
  database: string;
  /** The schema of the table, created when missing (the pg-boss engine's `schema`). @default 'pgboss' */
  schema?: string;
}

/** Reads at most this many processes (a fleet bigger than this is not one dashboard's). */
const MAX_PROCESSES = 1000;

/** {@link SnapshotStore} on Postgres. */
export class PostgresSnapshotStore implements SnapshotStore {
  readonly #pool: pg.Pool;
  readonly #table: string;
  readonly #schema: string;
  #ready: Promise<void> | null = null;
  #closed: Promise<void> | null = null;

  constructor(options: PostgresSnapshotStoreOptions) {
    this.#schema = options.schema ?? 'pgboss';
    this.#table = `${this.#schema}.fleet_process`;
    this.#pool = new pg.Pool({
      connectionString: options.database,
      max: 2,
      application_name: 'tenant-fleet:snapshots',
    });
    // An unheard 'error' event (an idle connection dropped) would crash the process.
    this.#pool.on('error', () => {});
  }

  async publish(snapshot: ProcessSnapshot, ttlMs: number): Promise<void> {
    await this.#table_();
    await this.#pool.query(
      `INSERT INTO ${this.#table} (id, heartbeat_at, expires_at, body)
       VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3::bigint / 1000.0), $4)
       ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at,
         expires_at = excluded.expires_at, body = excluded.body`,
      [snapshot.id, snapshot.heartbeatAt, ttlMs, JSON.stringify(snapshot)],
    );
  }

  async list(): Promise<ProcessSnapshot[]> {
    await this.#table_();
    await this.#pool.query(`DELETE FROM ${this.#table} WHERE expires_at <= clock_timestamp()`);
    const { rows } = await this.#pool.query<{ body: ProcessSnapshot }>(
      `SELECT body FROM ${this.#table} WHERE expires_at > clock_timestamp()
       ORDER BY heartbeat_at DESC LIMIT ${MAX_PROCESSES}`,
    );
    return rows.map((row) => row.body);
  }

  async remove(id: string): Promise<void> {
    await this.#table_();
    await this.#pool.query(`DELETE FROM ${this.#table} WHERE id = $1`, [id]);
  }

  close(): Promise<void> {
    this.#closed ??= this.#pool.end().catch(() => {});
    return this.#closed;
  }

  /** Creates the schema and table once (under pg-boss's advisory lock: many processes start at once). */
  #table_(): Promise<void> {
    this.#ready ??= withSchemaLock(this.#pool, this.#schema, async (client) => {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${this.#schema}`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${this.#table} (
           id text PRIMARY KEY, heartbeat_at bigint NOT NULL, expires_at timestamptz NOT NULL, body jsonb NOT NULL)`,
      );
    }).catch((error) => {
      this.#ready = null;
      throw error;
    });
    return this.#ready;
  }
}
