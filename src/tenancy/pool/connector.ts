/**
 * Opening and readying the connections of a pool: resolving the secret (once, and again
 * after a lifetime recycle so a rotated secret is picked up), calling the driver (whose
 * failure becomes a `TenantConnectionError`), the checks and `search_path` switch run
 * before each checkout, and the check of a connection given back.
 */

import { ConfigError, FleetError, TenantConnectionError } from '../../reporting/errors.js';
import { addressOf, PREFACE, type RawConnection } from '../drivers/driver.js';
import { connect, databaseKindOf } from '../drivers/index.js';
import { bindLease, type LeaseTaker } from './fleet-budget/lease.js';
import type { CloseReason, ConnectionPoolOptions } from './types.js';

/** What the connector takes from its pool's options. */
type ConnectorOptions = Pick<
  ConnectionPoolOptions<unknown>,
  'url' | 'resolveUrl' | 'connectTimeoutMs' | 'slug' | 'leases'
>;

/** Opens raw connections to one database whose URL is a secret resolved on demand. */
export class PoolConnector {
  readonly #slug: string | null;
  readonly #resolveUrl: () => Promise<string>;
  readonly #connectTimeoutMs: number;
  readonly #leases: LeaseTaker | undefined;
  // The resolved URL, shared by concurrent connects; cleared on failure so the next
  // connect retries the resolver instead of repeating a cached error.
  #url: Promise<string> | undefined;

  /**
   * From the pool's options: `url` as resolved when the pool was built, `resolveUrl` to
   * resolve it again once forgotten, `slug` (null for the shared schema-mode pool) to name
   * in errors, and `leases`, the fleet budget whose lease every connection takes first.
   */
  constructor(options: ConnectorOptions) {
    this.#slug = options.slug;
    this.#leases = options.leases;
    this.#url = Promise.resolve(options.url);
    this.#resolveUrl = options.resolveUrl;
    this.#connectTimeoutMs = options.connectTimeoutMs;
  }

  /**
   * Opens one connection; rejects with the resolver's error, a `FleetBudgetError` (no lease
   * of the fleet budget: with `leaseWanted` it waits for one while that says it is still
   * wanted, else it takes only a free one), or a
   * {@link TenantConnectionError} whose cause is the driver's (scrubbed) error.
   */
  async open(leaseWanted?: () => boolean): Promise<RawConnection> {
    this.#url ??= this.#resolveUrl();
    const url = this.#url;
    let resolved: string;
    try {
      resolved = await url;
    } catch (err) {
      if (this.#url === url) this.#url = undefined;
      throw err;
    }
    const server = this.#leases ? serverOf(resolved) : null;
    const lease = server === null ? undefined : await this.#leases?.take(server, leaseWanted);
    try {
      const raw = await connect(resolved, { connectTimeoutMs: this.#connectTimeoutMs });
      if (lease) bindLease(raw, lease);
      return raw;
    } catch (err) {
      lease?.end();
      if (this.#url === url) this.#url = undefined;
      if (err instanceof FleetError) throw err;
      throw new TenantConnectionError(this.#slug, addressOf(resolved), { cause: err });
    }
  }

  /** Forgets the resolved URL, so the next connection resolves the secret again. */
  forgetUrl(): void {
    this.#url = undefined;
  }
}

/** The server a database URL points at, `host:port` (lower case), or null for a SQLite file. */
export function serverOf(url: string): string | null {
  return databaseKindOf(url) === 'sqlite' ? null : addressOf(url).toLowerCase();
}

/**
 * A connection idle for longer than this is pinged before it is lent. Below it the check
 * costs more than it saves (HikariCP's `aliveBypassWindowMs` makes the same trade); above
 * it, the server may have dropped the connection without the 'error' event reaching us yet.
 */
const VALIDATE_AFTER_IDLE_MS = 1_000;

/** Whether a connection idle since `idleSince` must be pinged before it is lent at `now`. */
export function pingDue(conn: { readonly idleSince: number }, now: number): boolean {
  return now - conn.idleSince > VALIDATE_AFTER_IDLE_MS;
}

/**
 * What a schema-mode checkout runs before the tenant's first statement, carried by that
 * statement (`RawConnection[PREFACE]`: no round trip of its own, and the statement runs
 * only if all of this succeeded).
 *
 * `DISCARD ALL` sheds the session state one tenant may leave on a shared connection that
 * another tenant could read or be confused by: temp tables (`pg_temp` is searched *before*
 * search_path, so a temp table shadows the next tenant's table of the same name), cursors
 * held past their transaction, a `SET ROLE` or session authorization, settings (custom ones
 * such as `app.tenant`, used by row-level security), prepared statements, LISTENs, advisory
 * locks, sequence caches. It must be the first statement of its series (Postgres refuses it
 * inside a transaction or a pipeline) and commits at once.
 *
 * The `search_path` switch then commits in a transaction of its own: the statements before
 * a Sync share one transaction, so a handler whose first statement is `BEGIN` would
 * otherwise take the switch into its own transaction, and its ROLLBACK would undo it.
 *
 * It runs on *every* checkout, whoever had the connection before: a job may have changed
 * search_path itself, so remembering the last schema set would prove nothing about what the
 * connection sees. Connections released inside a transaction never get here: the pool
 * closes them.
 */
export function checkoutPreface(schema: string): readonly string[] {
  return ['DISCARD ALL', 'BEGIN', `SET search_path TO ${quoteIdent(schema)}, public`, 'COMMIT'];
}

/**
 * Hands a connection about to be lent to a schema-mode tenant the checkout's preface
 * ({@link checkoutPreface}); its next statement carries it. {@link ConfigError} for a
 * connection that cannot carry one (not Postgres).
 */
export function setCheckoutPreface(raw: RawConnection, schema: string): void {
  const setPreface = raw[PREFACE];
  if (setPreface === undefined) {
    throw new ConfigError('storageMode', `Expected a Postgres connection for schema mode, got ${raw.kind}`);
  }
  setPreface.call(raw, checkoutPreface(schema));
}

/**
 * Readies a connection about to be lent: in schema mode hands it the checkout's preface
 * ({@link setCheckoutPreface}), and pings it when it sat idle for a while (the ping then
 * carries the preface). Returns undefined when there is nothing to wait for, so the hit
 * path takes no extra turn of the event loop.
 */
export function prepareCheckout(
  conn: { readonly raw: RawConnection; readonly idleSince: number },
  schema: string | null,
): Promise<unknown> | undefined {
  if (schema !== null) setCheckoutPreface(conn.raw, schema);
  return pingDue(conn, Date.now()) ? conn.raw.ping() : undefined;
}

/** A Postgres identifier in double quotes, inner quotes doubled. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Why a connection given back without an error must not be lent again, if it must not.
 * Statements still in flight would run, or finish, on the next caller's turn (a BEGIN
 * sent and not awaited opens a transaction the next tenant writes into). Inside a
 * transaction (open or failed), the next caller's statements would run in it and a
 * ROLLBACK of theirs would undo their own checkout (search_path). Either way the
 * connection is closed, not rolled back and reused: a rollback is a round trip the
 * synchronous release cannot wait for, cannot stop statements already queued behind it,
 * and leaves session state (MySQL's variables, locks, temp tables) that only a new
 * session is sure to shed; closing cancels what is in flight on the server first.
 */
export function unfitReason(raw: RawConnection): CloseReason | undefined {
  if (!raw.alive) return undefined;
  if (raw.inFlight > 0) return 'in-flight';
  if (raw.inTransaction()) return 'in-transaction';
  return undefined;
}
