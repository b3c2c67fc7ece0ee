import { ClosedError } from '../../reporting/errors.js';
import type { DatabaseKind, RawConnection, Row } from '../drivers/driver.js';

/**
 * A connection to one tenant's data, lent by `TenantPools`. In schema mode it is a
 * connection of the shared pool with `search_path` set to the tenant's schema.
 * Give it back with `release()` (or `await using`); `release(err)` destroys it instead.
 */
export interface TenantConnection extends AsyncDisposable {
  /** The tenant this connection belongs to. */
  readonly slug: string;
  readonly kind: DatabaseKind;
  /** The tenant's schema in schema mode, else null. */
  readonly schema: string | null;
  /** The driver connection underneath, for what `query` does not cover. */
  readonly raw: RawConnection;
  /**
   * Runs one statement with the driver's own placeholders and resolves to its rows.
   * Rejects with `ClosedError` once the connection has been released.
   */
  query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  /**
   * Gives the connection back. With an error, the connection is closed rather than
   * reused. Releasing twice is harmless.
   */
  release(err?: unknown): void;
}

/** What a lease needs from the pool that lent it. */
interface Lender<C> {
  release(conn: C, err?: unknown): void;
}

/**
 * The {@link TenantConnection} TenantPools lends: a thin lease over one pooled connection.
 * A class rather than a closure-built object, so the hot path allocates one small object
 * per checkout and shares its methods.
 */
export class Lease<C extends { readonly raw: RawConnection }> implements TenantConnection {
  readonly slug: string;
  readonly kind: DatabaseKind;
  readonly schema: string | null;
  readonly raw: RawConnection;
  #lender: Lender<C> | undefined;
  readonly #conn: C;

  constructor(lender: Lender<C>, conn: C, slug: string, kind: DatabaseKind, schema: string | null) {
    this.#lender = lender;
    this.#conn = conn;
    this.slug = slug;
    this.kind = kind;
    this.schema = schema;
    this.raw = conn.raw;
  }

  query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<R[]> {
    if (this.#lender === undefined) return Promise.reject(new ClosedError('tenant connection (released)'));
    return this.raw.query<R>(sql, params);
  }

  release(err?: unknown): void {
    const lender = this.#lender;
    if (lender === undefined) return;
    this.#lender = undefined;
    lender.release(this.#conn, err);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.release();
  }
}
