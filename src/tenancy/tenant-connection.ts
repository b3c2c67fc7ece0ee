import type { Backend, RawConnection, Row } from './drivers/driver.js';

/**
 * A connection to one tenant's data, lent by `TenantPools`. In schema mode it is a
 * connection of the shared pool with `search_path` set to the tenant's schema.
 * Give it back with `release()` (or `await using`); `release(err)` destroys it instead.
 */
export interface TenantConnection extends AsyncDisposable {
  /** The tenant this connection belongs to. */
  readonly slug: string;
  readonly backend: Backend;
  /** The tenant's schema in schema mode, else null. */
  readonly schema: string | null;
  /** The driver connection underneath, for what `query` does not cover. */
  readonly raw: RawConnection;
  /** Runs one statement with the driver's own placeholders and resolves to its rows. */
  query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  /**
   * Gives the connection back. With an error, the connection is closed rather than
   * reused. Releasing twice is harmless.
   */
  release(err?: unknown): void;
}
