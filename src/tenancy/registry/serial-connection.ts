/**
 * A pool of one: the single connection the registry and the SQL schedule store each keep.
 * Statements run one after another, never two at once on the connection (pg deprecates
 * overlapping queries on one client, and transactions need the order anyway); the
 * connection opens lazily, and one the server killed is replaced on the next use.
 */
import { ClosedError, DatabaseConnectionError, FleetError } from '../../reporting/errors.js';
import { connect, type RawConnection } from '../drivers/index.js';

/** How a {@link SerialConnection} opens its connection. */
export interface SerialConnectionOptions {
  /** The database URL; it carries the password, so it only ever reaches a message redacted. */
  url: string;
  /** What the connection serves, for messages: `registry`, `schedule store`. */
  what: string;
  connectTimeoutMs: number;
  /** Runs on every new connection before its first statement (creating a table). */
  setup?: (conn: RawConnection) => Promise<void>;
}

/** One lazily opened, reopened-when-dead connection whose statements run in order. */
export class SerialConnection {
  readonly #options: SerialConnectionOptions;
  #connection: Promise<RawConnection> | undefined;
  #tail: Promise<unknown> = Promise.resolve();
  #closing: Promise<void> | undefined;

  constructor(options: SerialConnectionOptions) {
    this.#options = options;
  }

  /**
   * Runs `fn` on the connection after everything queued before it. With `retry`, a call
   * that failed because the connection died (server restart, killed session) runs once
   * more on a fresh one: only for statements that are safe to repeat, since a write may
   * have committed before the loss.
   */
  run<T>(fn: (conn: RawConnection) => Promise<T>, retry = false): Promise<T> {
    if (this.#closing) return Promise.reject(new ClosedError(this.#options.what));
    const result = this.#tail.then(async () => {
      const conn = await this.#conn();
      try {
        return await fn(conn);
      } catch (err) {
        if (!retry || conn.alive) throw err;
        return fn(await this.#conn());
      }
    });
    this.#tail = result.catch(() => {});
    return result;
  }

  /**
   * Lets the statements already queued finish, up to `timeoutMs`, then closes the
   * connection (failing whatever still runs). Idempotent.
   */
  close(timeoutMs: number): Promise<void> {
    this.#closing ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      });
      await Promise.race([this.#tail, deadline]);
      clearTimeout(timer);
      const connection = this.#connection;
      this.#connection = undefined;
      if (connection) await connection.then((conn) => conn.close()).catch(() => {});
    })();
    return this.#closing;
  }

  // A failed open is not kept, so the next call tries again.
  async #conn(): Promise<RawConnection> {
    if (this.#connection) {
      const conn = await this.#connection.catch(() => undefined);
      if (conn?.alive) return conn;
      await conn?.close();
    }
    // Past close()'s deadline a straggler must not open a connection nobody will close.
    if (this.#closing) throw new ClosedError(this.#options.what);
    const opening = this.#open();
    this.#connection = opening;
    try {
      return await opening;
    } catch (err) {
      if (this.#connection === opening) this.#connection = undefined;
      throw err;
    }
  }

  async #open(): Promise<RawConnection> {
    const { url, what, connectTimeoutMs, setup } = this.#options;
    let conn: RawConnection;
    try {
      conn = await connect(url, { connectTimeoutMs });
    } catch (err) {
      // A ConfigError (unknown scheme, bad sqlite path) already says what is wrong.
      throw err instanceof FleetError ? err : new DatabaseConnectionError(what, url, err);
    }
    if (setup) {
      try {
        await setup(conn);
      } catch (err) {
        await conn.close();
        throw err;
      }
    }
    return conn;
  }
}
