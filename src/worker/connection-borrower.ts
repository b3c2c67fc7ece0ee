import { ConfigError } from '../reporting/errors.js';
import type { Org } from '../tenancy/org.js';
import type { TenantConnection } from '../tenancy/tenant-pools/tenant-connection.js';
import type { FairPicker } from './fair-picker.js';
import type { ConnectionLender } from './worker-types.js';

/** What a {@link ConnectionBorrower} works with. */
export interface ConnectionBorrowerOptions {
  /** Required: without it the constructor throws {@link ConfigError}. */
  pools: ConnectionLender | undefined;
  picker: FairPicker;
  /** How long a tenant whose pool could not lend is skipped before it is tried again. */
  poolRetryMs: number;
  /** Tenants were unblocked: wake an idle slot. */
  onUnblocked: () => void;
  onError: (error: unknown, during: string) => void;
}

/**
 * Borrows tenant connections for a worker *without waiting*, and keeps the picker's
 * blocked flags in step: a tenant whose pool cannot lend now is blocked (skipped by the
 * round) until this worker gives a connection back (one tenant, the one blocked longest,
 * per connection) or `poolRetryMs` passes (all of them: connections may have come back
 * elsewhere), so no slot ever sits waiting for a connection while other tenants could run.
 */
export class ConnectionBorrower {
  readonly #o: ConnectionBorrowerOptions & { pools: ConnectionLender };
  #unblockTimer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: ConnectionBorrowerOptions) {
    const { pools } = options;
    if (pools === undefined) {
      throw new ConfigError(
        'borrowConnection',
        'Expected `pools` to lend tenant connections when `borrowConnection` is true, got none (pass pools, or borrowConnection: false)',
      );
    }
    this.#o = { ...options, pools };
  }

  /** A connection to the tenant's data, or null (the tenant is then blocked for a while). */
  async borrow(org: Org): Promise<TenantConnection | null> {
    let lent: TenantConnection | null;
    try {
      lent = (await this.#o.pools.tryAcquire(org)) ?? null;
    } catch (error) {
      // An unavailable tenant database is skipped like a busy pool, but spends its turn;
      // the error is reported.
      this.#o.onError(error, `tryAcquire ${org.slug}`);
      this.#o.picker.block(org.slug, { keepTurn: false });
      this.#scheduleUnblock();
      return null;
    }
    if (lent === null) {
      this.#o.picker.block(org.slug);
      this.#scheduleUnblock();
    }
    return lent;
  }

  /**
   * A connection for the next job of a turn, or undefined when none can be lent without
   * waiting (the turn then ends; the tenant is not blocked, its next pick borrows as
   * usual). Goes through the pool's checkout like every borrow, so the job starts clean.
   */
  async borrowAgain(org: Org): Promise<TenantConnection | undefined> {
    try {
      return (await this.#o.pools.tryAcquire(org)) ?? undefined;
    } catch (error) {
      this.#o.onError(error, `tryAcquire ${org.slug}`);
      return undefined;
    }
  }

  /** Gives a connection back (destroyed when `error` is given) and retries blocked tenants. */
  giveBack(db: TenantConnection | undefined, error?: Error): void {
    if (db === undefined) return;
    try {
      db.release(error);
    } catch (releaseError) {
      this.#o.onError(releaseError, 'release');
    }
    // A connection came back: the tenant that has waited longest for one may borrow it.
    this.#o.picker.unblockOne();
  }

  /** No more retries are scheduled (the worker is closing). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#unblockTimer);
  }

  #scheduleUnblock(): void {
    if (this.#unblockTimer !== undefined || this.#stopped) return;
    this.#unblockTimer = setTimeout(() => {
      this.#unblockTimer = undefined;
      this.#o.picker.unblockAll();
      this.#o.onUnblocked();
    }, this.#o.poolRetryMs);
  }
}
