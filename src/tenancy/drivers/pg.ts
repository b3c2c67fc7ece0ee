import pg from 'pg';
import { ClosedError, describe, ValidationError } from '../../reporting/errors.js';
import type { ConnectOptions, RawConnection, Row } from './driver.js';
import { ABANDON_WAIT_MS, CLOSE_WAIT_MS, PREFACE, StatementQueue, scrubError } from './driver.js';
import { sendCancelRequest } from './pg-cancel.js';
import { type PgStatement, PrefacedStatement } from './pg-preface.js';

/** Opens one node-postgres `Client` to `url`. */
export async function connectPostgres(url: string, options: ConnectOptions = {}): Promise<RawConnection> {
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: connectTimeoutMs,
    // A URL's own `?application_name=` takes precedence (node-postgres merges it over this).
    application_name: 'tenant-fleet',
    // A peer gone silent (half-open TCP) is noticed by the kernel, not only by a query.
    keepAlive: true,
  });
  const listeners: Array<(err: Error) => void> = [];
  let alive = true;
  // Always listen: an idle client whose kind is terminated emits 'error', and an
  // unheard 'error' event would crash the process.
  client.on('error', (err) => {
    alive = false;
    const safe = scrubError(err);
    for (const listener of listeners) listener(safe);
  });
  client.on('end', () => {
    alive = false;
  });
  try {
    await client.connect();
  } catch (err) {
    alive = false;
    await endWithin(client, Math.min(CLOSE_WAIT_MS, connectTimeoutMs));
    throw scrubError(err);
  }
  // Statements go to the client one at a time: node-postgres would queue them itself, but
  // deprecates that, and our own queue lets close() drop what was never sent.
  const statements = new StatementQueue();
  let closing: Promise<void> | undefined;
  const failure = async (err: unknown): Promise<Error> => {
    if (isConnectionLost(err)) alive = false;
    // node-postgres rejects at the server's error, before its ReadyForQuery: wait for that,
    // so that once a statement has failed, inTransaction() reads the state it left (a
    // failed transaction) and the next statement is not queued behind node-postgres' back.
    else await readyAgain(client);
    if (closing) return new ClosedError('database connection', { cause: scrubError(err) });
    return scrubError(err);
  };
  // Statements the next statement sent carries ahead of it (RawConnection[PREFACE]); put
  // back when they failed, so the statement after retries them, and the connection is then
  // not lent again.
  let preface: readonly string[] | undefined;
  const send = (statement: PgStatement): void => {
    const pending = preface;
    if (pending === undefined) {
      client.query(statement as pg.Submittable);
      return;
    }
    preface = undefined;
    client.query(
      new PrefacedStatement(pending, statement, () => {
        preface ??= pending;
        alive = false;
      }),
    );
  };
  const run = async <R extends Row>(sql: string, params?: readonly unknown[]): Promise<R[]> => {
    try {
      const result =
        preface === undefined
          ? await client.query(sql, params as unknown[] | undefined)
          : await new Promise<pg.QueryResult | pg.QueryResult[]>((resolve, reject) => {
              send(
                new pg.Query(sql, params as unknown[] | undefined, (err, res) =>
                  err ? reject(err) : resolve(res as unknown as pg.QueryResult),
                ) as unknown as PgStatement,
              );
            });
      // A script of several statements answers with one result each: no rows to return.
      return ((result as pg.QueryResult).rows ?? []) as R[];
    } catch (err) {
      throw await failure(err);
    }
  };
  const runScript = async (sql: string): Promise<void> => {
    const script = new ScriptWithoutResults(sql);
    send(script);
    try {
      await script.done;
    } catch (err) {
      throw await failure(err);
    }
  };
  const conn: RawConnection = {
    kind: 'postgres',
    get alive() {
      return alive;
    },
    get inFlight() {
      return statements.size;
    },
    query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<R[]> {
      // node-postgres refuses these only once the statement is on its way, behind a preface.
      if (typeof sql !== 'string') return notSql(sql);
      if (params !== undefined && !Array.isArray(params)) {
        return Promise.reject(
          new ValidationError('params', `Expected the parameters as an array, got ${describe(params)}`),
        );
      }
      return statements.run(() => run<R>(sql, params));
    },
    exec(sql: string): Promise<void> {
      if (typeof sql !== 'string') return notSql(sql);
      return statements.run(() => runScript(sql));
    },
    [PREFACE](prefaceStatements: readonly string[] | undefined): void {
      preface = prefaceStatements;
    },
    async ping(): Promise<void> {
      await conn.query('select 1');
    },
    close(): Promise<void> {
      alive = false;
      closing ??= (async () => {
        // Nothing queued behind the running statement is sent any more.
        const abandoned = statements.close();
        if (!abandoned) return endWithin(client, Math.min(CLOSE_WAIT_MS, connectTimeoutMs));
        // The server would run the statement to its end, holding the backend (and a
        // connection the budget no longer counts) long after the socket closed; and
        // node-postgres' end() drops the socket at once while a statement runs. So: ask the
        // server to cancel, wait (bounded) for the statement to answer, then end the session
        // the polite way, which resolves once the server has closed it, that is once the
        // backend has left pg_stat_activity.
        const { host, port, processID, secretKey } = client as unknown as PgClientKeys;
        const cancelled = sendCancelRequest({ host, port, processID, secretKey }, ABANDON_WAIT_MS);
        await settledWithin(statements.settled(), ABANDON_WAIT_MS);
        await cancelled;
        await endWithin(client, Math.min(CLOSE_WAIT_MS, connectTimeoutMs));
      })();
      return closing;
    },
    onError(listener) {
      listeners.push(listener);
    },
    inTransaction(): boolean {
      // 'I' idle, 'T' in a transaction block, 'E' in a failed one (null before the first
      // ReadyForQuery, which connect() has already awaited).
      const status = client.getTransactionStatus();
      return status === 'T' || status === 'E';
    },
  };
  return conn;
}

/**
 * Resolves once the client is ready for the next statement: at once if it is, else at the
 * server's ReadyForQuery, or when the connection ends or errors instead.
 */
function readyAgain(client: pg.Client): Promise<void> {
  const { readyForQuery, connection } = client as unknown as {
    readyForQuery: boolean;
    connection: pg.Connection;
  };
  if (readyForQuery) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = (): void => {
      for (const event of ['readyForQuery', 'end', 'error']) connection.off(event, done);
      resolve();
    };
    for (const event of ['readyForQuery', 'end', 'error']) connection.on(event, done);
  });
}

/** Resolves when `promise` settles or `ms` have passed, whichever comes first. */
function settledWithin(promise: Promise<void>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    promise.finally(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** What a cancel request needs from a connected client (public fields of pg's Client). */
interface PgClientKeys {
  host: string;
  port: number;
  processID: number;
  secretKey: number;
}

/**
 * Ends the client, and destroys its socket when that has not finished within `ms`: over
 * a half-open TCP connection `end()` never resolves, and the pool frees the connection's
 * budget slot only once its close has finished. `end()` resolves on the socket's 'end',
 * that is once the server has ended the session.
 */
function endWithin(client: pg.Client, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      const stream = (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection
        ?.stream;
      stream?.destroy();
      resolve();
    }, ms);
    client
      .end()
      .catch(() => {})
      .finally(() => {
        clearTimeout(timer);
        resolve();
      });
  });
}

/**
 * True when a failed query means the connection itself is gone, so `alive` must turn
 * false at once rather than when the socket's 'end' event arrives: the server ended the
 * session (SQLSTATE class 08, or 57P0x after `pg_terminate_backend` or a shutdown), or
 * the error is not the server's answer at all (a reset socket, "Connection terminated").
 */
function isConnectionLost(err: unknown): boolean {
  if (!(err instanceof pg.DatabaseError)) return true;
  const code = err.code ?? '';
  return code.startsWith('08') || code.startsWith('57P');
}

/**
 * A script of statements whose results nobody reads (the schema-mode checkout's reset,
 * migrations), sent through node-postgres' `Submittable` interface (the one pg-cursor
 * uses): the server's replies are dropped as they arrive instead of being built into a
 * `Result` per statement, which costs a checkout about 5 µs less CPU. Settles at the first
 * error (as node-postgres' own query does) or once the server is ready for the next one.
 */
class ScriptWithoutResults implements pg.Submittable, PgStatement {
  readonly done: Promise<void>;
  /** Set by node-postgres when a `query_timeout` applies: its timer stops when this is called. */
  callback?: (error?: unknown) => void;
  #resolve!: () => void;
  #reject!: (error: unknown) => void;
  #failed = false;

  constructor(readonly text: string) {
    this.done = new Promise<void>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  submit(connection: pg.Connection): void {
    connection.query(this.text);
  }

  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleCommandComplete(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyData(): void {}

  /** A `COPY … FROM STDIN` in the script: refused, as node-postgres' own query does. */
  handleCopyInResponse(connection: pg.Connection): void {
    (connection as unknown as { sendCopyFail(message: string): void }).sendCopyFail(
      'No source stream defined',
    );
  }

  handleError(error: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#reject(error);
    this.callback?.(error);
  }

  handleReadyForQuery(): void {
    if (this.#failed) return;
    this.#resolve();
    this.callback?.();
  }
}

/** The rejection of SQL given as something other than a string. */
function notSql(sql: unknown): Promise<never> {
  return Promise.reject(new ValidationError('sql', `Expected the SQL as a string, got ${describe(sql)}`));
}
