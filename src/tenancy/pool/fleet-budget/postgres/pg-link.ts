/**
 * The Postgres lease store's connections: a small pool for the steps (or the caller's
 * pool), and one client of its own that LISTENs on the fleet's channel, reconnecting on
 * its own after it was dropped (a restart, `pg_terminate_backend`). Every call is bounded
 * in time, first makes sure the schema exists (once per link, again if it was dropped;
 * the DDL only when a read finds it missing or of another version),
 * and fails at once when Postgres is down: the budget then opens no connection.
 */
import pg from 'pg';
import { bounded } from '../bounded.js';
import { ENSURE_TIMEOUT_MS, ensureSql, ident, MISSING_CODES, readySql } from './lease-sql.js';

/** What the store's own connections are called in `pg_stat_activity`. */
export const APPLICATION_NAME = 'tenant-fleet-budget';
// Takes serialise on a server's row anyway: a few connections carry every caller.
const POOL_SIZE = 3;

/** Runs the lease functions and NOTIFYs, and hands notifications of the channel to `onPayload`. */
export class PgLink {
  readonly #pool: pg.Pool;
  readonly #owned: boolean;
  readonly #schema: string;
  readonly #timeoutMs: number;
  readonly #onPayload: (payload: string) => void;
  #ensured: Promise<void> | undefined;
  #listener: pg.Client | undefined;
  #reconnect: NodeJS.Timeout | undefined;
  #attempts = 0;
  #closed = false;

  constructor(
    postgres: string | pg.Pool,
    schema: string,
    timeoutMs: number,
    onPayload: (payload: string) => void,
  ) {
    this.#owned = typeof postgres === 'string';
    this.#schema = schema;
    this.#timeoutMs = timeoutMs;
    this.#onPayload = onPayload;
    this.#pool =
      typeof postgres === 'string'
        ? new pg.Pool({
            connectionString: postgres,
            max: POOL_SIZE,
            application_name: APPLICATION_NAME,
            connectionTimeoutMillis: timeoutMs,
            // The server gives up on a step its caller gave up on (a lock wait, a hang).
            statement_timeout: timeoutMs,
            idleTimeoutMillis: 30_000,
            keepAlive: true,
          })
        : postgres;
    // A dropped idle connection must not crash the process: the next call opens another.
    if (this.#owned) this.#pool.on('error', () => {});
    this.#listen();
  }

  /**
   * Runs `sql` with `params` within the time bound, (re)creating the schema when it is
   * missing; creating it has a bound of its own (ENSURE_TIMEOUT_MS), as a step's bound is
   * too short for DDL on a busy server.
   */
  async query<R extends pg.QueryResultRow>(sql: string, params: unknown[]): Promise<R[]> {
    const ensured = this.#ensure();
    await ensured;
    try {
      return await bounded(this.#rows<R>(sql, params), this.#timeoutMs, 'Postgres');
    } catch (err) {
      if (!MISSING_CODES.has((err as { code?: string }).code ?? '')) throw err;
      // Dropped under us: create it again (a new epoch), then try once more. The calls
      // that failed together run the DDL once: the first replaces the ensure they shared.
      if (this.#ensured === ensured) this.#ensured = undefined;
      await this.#ensure(true);
      return bounded(this.#rows<R>(sql, params), this.#timeoutMs, 'Postgres');
    }
  }

  async #rows<R extends pg.QueryResultRow>(sql: string, params: unknown[]): Promise<R[]> {
    return (await this.#pool.query<R>(sql, params)).rows;
  }

  /** Closes the listener, and the pool when the link made it. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#reconnect);
    const listener = this.#listener;
    this.#listener = undefined;
    await listener?.end().catch(() => {});
    if (this.#owned) await this.#pool.end().catch(() => {});
  }

  // Cached while it holds; cleared on failure so that the next call tries again. The DDL
  // runs only when the schema is not as it leaves it, or `force` (a call found a piece gone).
  #ensure(force = false): Promise<void> {
    this.#ensured ??= this.#create(force).catch((err: unknown) => {
      this.#ensured = undefined;
      throw err;
    });
    return this.#ensured;
  }

  async #create(force: boolean): Promise<void> {
    const bound = Math.max(this.#timeoutMs, ENSURE_TIMEOUT_MS);
    if (!force) {
      const [row] = await bounded(
        this.#rows<{ ready: boolean }>(readySql(this.#schema), []),
        bound,
        'Postgres',
      );
      if (row?.ready) return;
    }
    await bounded(this.#pool.query(ensureSql(this.#schema)), bound, 'Postgres');
  }

  #listen(): void {
    if (this.#closed) return;
    const options = this.#owned
      ? { connectionString: this.#pool.options.connectionString }
      : { ...this.#pool.options };
    const client = new pg.Client({
      ...options,
      application_name: APPLICATION_NAME,
      connectionTimeoutMillis: Math.max(this.#timeoutMs, 1_000),
      keepAlive: true,
    });
    this.#listener = client;
    let lost = false;
    const onLost = () => {
      if (lost || this.#listener !== client) return;
      lost = true;
      this.#listener = undefined;
      client.end().catch(() => {});
      if (this.#closed) return;
      // Meanwhile waiters poll: a missed notification costs one poll interval at most.
      this.#attempts++;
      this.#reconnect = setTimeout(() => this.#listen(), Math.min(50 * this.#attempts, 1_000));
      this.#reconnect.unref();
    };
    client.on('error', onLost);
    client.on('end', onLost);
    client.on('notification', (message) => {
      if (message.channel === this.#schema && message.payload) this.#onPayload(message.payload);
    });
    client
      .connect()
      .then(() => client.query(`LISTEN ${ident(this.#schema)}`))
      .then(() => {
        this.#attempts = 0;
      }, onLost);
  }
}
