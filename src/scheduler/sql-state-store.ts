import type { RawConnection } from '../tenancy/drivers/driver.js';
import { SerialConnection } from '../tenancy/registry/serial-connection.js';
import type { ScheduleStateStore } from './state-store.js';

const TABLE = 'fleet_schedule_ticks';

/** Options of {@link SqlScheduleStore}. */
export interface SqlScheduleStoreOptions {
  /** The database to keep the table in, usually the registry's (`postgres://`, `mysql://`, `sqlite:`). */
  url: string;
  /** @default 10_000 */
  connectTimeoutMs?: number;
}

// How long close() lets a queued read or write finish before closing under it.
const CLOSE_TIMEOUT_MS = 5000;

/**
 * Keeps each schedule's last tick in a `fleet_schedule_ticks` table of a SQL database:
 * the registry database when the engine has no Redis (the memory engine), so a
 * scheduler restarted on the same registry still knows what it missed.
 *
 * It holds one connection (a pool of one): several schedules' ticks at once queue their
 * statements on it rather than overlap, and a connection the server killed is replaced
 * on the next use, so a restarted database costs at most the statement in flight.
 */
export class SqlScheduleStore implements ScheduleStateStore {
  readonly #connection: SerialConnection;

  constructor(options: SqlScheduleStoreOptions) {
    this.#connection = new SerialConnection({
      url: options.url,
      what: 'schedule store',
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      // Every new connection makes sure of the table: cheap, and right after a database
      // was restored without it.
      setup: async (conn) => {
        await conn.query(
          `CREATE TABLE IF NOT EXISTS ${TABLE} (schedule_id VARCHAR(100) PRIMARY KEY, last_tick_ms BIGINT NOT NULL)`,
        );
      },
    });
  }

  // Both statements are safe to repeat (a read, a forward-only upsert): a call that lost
  // its connection runs again on a new one.
  #run<T>(fn: (conn: RawConnection) => Promise<T>): Promise<T> {
    return this.#connection.run(fn, true);
  }

  lastTick(scheduleId: string): Promise<Date | null> {
    return this.#run(async (conn) => {
      const placeholder = conn.kind === 'postgres' ? '$1' : '?';
      const rows = await conn.query<{ last_tick_ms: number | string | bigint }>(
        `SELECT last_tick_ms FROM ${TABLE} WHERE schedule_id = ${placeholder}`,
        [scheduleId],
      );
      const row = rows[0];
      return row ? new Date(Number(row.last_tick_ms)) : null;
    });
  }

  recordTick(scheduleId: string, tick: Date): Promise<void> {
    const ms = tick.getTime();
    return this.#run(async (conn) => {
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
    });
  }

  close(): Promise<void> {
    return this.#connection.close(CLOSE_TIMEOUT_MS);
  }
}
