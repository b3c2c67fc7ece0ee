import pg from 'pg';

/**
 * A statement sent with a preface: statements that must take effect before it, and only if
 * they all do, travelling in the same write (no round trip of their own). The schema-mode
 * checkout's session reset and `search_path` switch ride this way on a handler's first
 * statement (docs/ARCHITECTURE.md, "Invariants": tenant isolation).
 *
 * On the wire: each preface statement as an extended-protocol Parse/Bind/Execute, with no
 * Sync, then the statement itself. A statement with parameters is extended too and ends
 * with its own Sync; one without is a simple Query, which answers ReadyForQuery by itself.
 * The server runs the preface statements one by one; once one fails it skips every message
 * up to the next Sync, so the statement never runs on a session the preface did not
 * prepare. After a failed preface a simple Query is skipped too: this sends the Sync then,
 * so exactly one ReadyForQuery answers every outcome, as node-postgres expects.
 *
 * A preface that changes session state must commit it itself (end with COMMIT): the
 * statements before a Sync share one transaction, so without it a `BEGIN` as the first
 * statement would take the preface into its transaction and a later ROLLBACK undo it.
 */
export class PrefacedStatement implements pg.Submittable {
  /** Answers of the preface seen so far: one CommandComplete per preface statement. */
  #completed = 0;
  /** Whether the statement ends its own messages with a Sync (extended protocol). */
  #syncs = false;
  /** Why node-postgres would not send the statement, if it would not. */
  #refused: Error | undefined;
  /** Set by node-postgres when a `query_timeout` applies: its timer stops when this is called. */
  callback?: (error?: unknown) => void;

  constructor(
    readonly preface: readonly string[],
    readonly statement: PgStatement,
    /** Called when the preface failed: the statement did not run, and the session is as it was, or in a failed transaction. */
    readonly onPrefaceFailed: () => void,
  ) {}

  get #inPreface(): boolean {
    return this.#completed < this.preface.length;
  }

  submit(connection: pg.Connection): void {
    const { stream } = connection as unknown as {
      stream: { cork(): void; uncork(): void; write(chunk: Buffer): void };
    };
    // One write for the preface and the statement (the statement's own cork nests).
    stream.cork();
    try {
      stream.write(encodePreface(this.preface));
      this.#syncs = this.statement.requiresPreparation?.() ?? false;
      const refused = this.statement.submit(connection);
      if (refused instanceof Error) {
        // Input node-postgres cannot send (the driver refuses it before it gets here). The
        // preface is on its way already: a Sync ends the series, and the statement fails
        // once the server has answered, so the connection stays in step.
        this.#refused = refused;
        this.#syncs = true;
        connection.sync();
      }
    } finally {
      stream.uncork();
    }
  }

  handleCommandComplete(msg: unknown, connection: pg.Connection): void {
    if (this.#inPreface) this.#completed++;
    else this.statement.handleCommandComplete(msg, connection);
  }

  handleError(error: Error, connection: pg.Connection): void {
    if (this.#inPreface) {
      this.onPrefaceFailed();
      // The server skips to the next Sync; a simple Query brings none of its own. (Not for
      // an error of node-postgres' own, such as a query_timeout: the server still runs.)
      if (!this.#syncs && error instanceof pg.DatabaseError && writable(connection)) connection.sync();
    }
    this.statement.handleError(error, connection);
    this.callback?.(error);
  }

  // Rows of a preface statement (a SELECT sends them, undescribed) are nobody's.
  handleRowDescription(msg: unknown): void {
    if (!this.#inPreface) this.statement.handleRowDescription(msg);
  }
  handleDataRow(msg: unknown): void {
    if (!this.#inPreface) this.statement.handleDataRow(msg);
  }
  handleEmptyQuery(connection: pg.Connection): void {
    // An empty preface statement answers EmptyQueryResponse instead of CommandComplete.
    if (this.#inPreface) this.#completed++;
    else this.statement.handleEmptyQuery(connection);
  }
  handlePortalSuspended(connection: pg.Connection): void {
    this.statement.handlePortalSuspended(connection);
  }
  handleCopyInResponse(connection: pg.Connection): void {
    this.statement.handleCopyInResponse(connection);
  }
  handleCopyData(msg: unknown, connection: pg.Connection): void {
    this.statement.handleCopyData(msg, connection);
  }
  handleReadyForQuery(connection: pg.Connection): void {
    if (this.#refused) this.statement.handleError(this.#refused, connection);
    else this.statement.handleReadyForQuery(connection);
    this.callback?.(this.#refused);
  }
}

/** Bind (unnamed portal and statement, no parameters) then Execute (every row) in protocol v3. */
const BIND_EXECUTE = Buffer.from([
  0x42,
  0,
  0,
  0,
  12,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0, // 'B', length, portal "", statement "", 0 formats, 0 values, 0 result formats
  0x45,
  0,
  0,
  0,
  9,
  0,
  0,
  0,
  0,
  0, // 'E', length, portal "", no row limit
]);

/**
 * The preface's messages in one buffer: Parse (unnamed, no parameter types), Bind and
 * Execute of each statement. Built here rather than through node-postgres' Connection, a
 * write per message, since it goes out on every schema-mode checkout.
 */
export function encodePreface(statements: readonly string[]): Buffer {
  let size = 0;
  for (const text of statements) size += 1 + 4 + 1 + Buffer.byteLength(text) + 1 + 2 + BIND_EXECUTE.length;
  const buffer = Buffer.allocUnsafe(size);
  let at = 0;
  for (const text of statements) {
    const start = at;
    buffer[at++] = 0x50; // 'P'
    at += 4; // the length, once known
    buffer[at++] = 0; // the unnamed statement
    at += buffer.write(text, at, 'utf8');
    buffer[at++] = 0;
    at = buffer.writeInt16BE(0, at); // no parameter types
    buffer.writeInt32BE(at - start - 1, start + 1);
    at += BIND_EXECUTE.copy(buffer, at);
  }
  return buffer;
}

/** What a node-postgres query (or a Submittable of ours) answers to. */
export interface PgStatement {
  /** node-postgres' Query returns an Error for input it cannot send. */
  submit(connection: pg.Connection): unknown;
  /** node-postgres' Query: true when it goes as Parse/Bind/Execute/Sync rather than a simple Query. */
  requiresPreparation?(): boolean;
  handleCommandComplete(msg: unknown, connection: pg.Connection): void;
  handleError(error: Error, connection: pg.Connection): void;
  handleRowDescription(msg: unknown): void;
  handleDataRow(msg: unknown): void;
  handleEmptyQuery(connection: pg.Connection): void;
  handlePortalSuspended(connection: pg.Connection): void;
  handleCopyInResponse(connection: pg.Connection): void;
  handleCopyData(msg: unknown, connection: pg.Connection): void;
  handleReadyForQuery(connection: pg.Connection): void;
}

function writable(connection: pg.Connection): boolean {
  return (connection as unknown as { stream: { writable?: boolean } }).stream.writable !== false;
}
