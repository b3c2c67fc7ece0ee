import { ClosedError } from '../errors.js';
import type { RawConnection } from '../tenancy/drivers/driver.js';
import { connect } from '../tenancy/drivers/index.js';
import type { ScheduleStateStore } from './state-store.js';

const TABLE = 'fleet_schedule_ticks';

/** Options of {@link SqlScheduleStore}. */
export interface SqlScheduleStoreOptions {
  /** The database to keep the table in, usually the registry's (`postgres://`, `mysql://`, `sqlite:`). */
  url: string;
  /** @default 10_000 */
  connectTimeoutMs?: number;
}

/**
 * Keeps each schedule's last tick in a `fleet_schedule_ticks` table of a SQL database:
 * the registry database when the engine has no Redis (the memory engine), so a
 * scheduler restarted on the same registry still knows what it missed.
 */
export class SqlScheduleStore implements ScheduleStateStore {
  readonly #options: SqlScheduleStoreOptions;
  #connecting: Promise<RawConnection> | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: SqlScheduleStoreOptions) {
    this.#options = options;
  }

  // Lazy: connect and create the table on first use; a failed attempt is forgotten so
  // the next call retries.
  #connection(): Promise<RawConnection> {
    if (this.#closing) return Promise.reject(new ClosedError('schedule store'));
    this.#connecting ??= (async () => {
      const conn = await connect(this.#options.url, {
        connectTimeoutMs: this.#options.connectTimeoutMs ?? 10_000,
      });
      try {
        await conn.query(
          `CREATE TABLE IF NOT EXISTS ${TABLE} (schedule_id VARCHAR(100) PRIMARY KEY, last_tick_ms BIGINT NOT NULL)`,
        );
      } catch (err) {
        await conn.close();
        throw err;
      }
      return conn;
    })().catch((err) => {
      this.#connecting = undefined;
      throw err;
    });
    return this.#connecting;
  }

  async lastTick(scheduleId: string): Promise<Date | null> {
    const conn = await this.#connection();
    const placeholder = conn.kind === 'postgres' ? '$1' : '?';
    const rows = await conn.query<{ last_tick_ms: number | string | bigint }>(
      `SELECT last_tick_ms FROM ${TABLE} WHERE schedule_id = ${placeholder}`,
      [scheduleId],
    );
    const row = rows[0];
    return row ? new Date(Number(row.last_tick_ms)) : null;
  }

  async recordTick(scheduleId: string, tick: Date): Promise<void> {
    const conn = await this.#connection();
    const ms = tick.getTime();
    if (conn.kind === 'mysql') {
      await conn.query(
        `INSERT INTO ${TABLE} (schedule_id, last_tick_ms) VALUES (?, ?)
         ON DUPLICATE KEY UPDATE last_tick_ms = GREATEST(last_tick_ms, VALUES(last_tick_ms))`,
        [scheduleId, ms],
      );
      return;
    }
    const [a, b] = conn.kind === 'postgres' ? ['$1', '$2'] : ['?', '?'];
    await conn.query(
      `INSERT INTO ${TABLE} (schedule_id, last_tick_ms) VALUES (${a}, ${b})
       ON CONFLICT (schedule_id) DO UPDATE SET last_tick_ms = excluded.last_tick_ms
       WHERE ${TABLE}.last_tick_ms < excluded.last_tick_ms`,
      [scheduleId, ms],
    );
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      const connecting = this.#connecting;
      if (!connecting) return;
      try {
        await (await connecting).close();
      } catch {
        // A connection that never opened has nothing to close.
      }
    })();
    return this.#closing;
  }
}
