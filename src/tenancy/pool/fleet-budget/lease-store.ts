/**
 * Where the fleet budget keeps its leases: the steps of the lease protocol, each one
 * atomic in the store, and the two kinds of message the processes of a fleet exchange.
 * FleetBudget only speaks this interface; `redis/` and `postgres/` implement it.
 *
 * Every call is bounded in time by the store: one that rejects (the store is down, hangs,
 * or answered after the bound) means "unreachable" to the budget, which then opens no
 * connection. A step that ran after its caller gave up only leaves a lease or a ticket
 * nobody renews: it lapses within the lease TTL.
 */

/** What one attempt at a lease got. */
export interface TakeAnswer {
  /** Whether the lease was granted. */
  taken: boolean;
  /** Leases live on the server fleet-wide after the attempt. */
  live: number;
}

/** One server's part of a renewal: its limit and the ids of this process's leases there. */
export interface RenewRequest {
  server: string;
  limit: number;
  ids: readonly string[];
}

/** One server's answer to a renewal, in the order asked. */
export interface RenewAnswer {
  /** Leases live on the server fleet-wide after the renewal. */
  live: number;
  /** Leases that had lapsed and could not be taken again (the server is full). */
  lost: string[];
}

/** What the other processes of the fleet tell this one. */
export interface LeaseStoreListener {
  /** A lease or a ticket on `server` was given back while someone queued: try again. */
  released(server: string): void;
  /** Process `from` asks the others to close an idle connection on `server`. */
  wanted(server: string, from: string): void;
}

/** The lease protocol's steps in one store; see the implementations for how each holds. */
export interface LeaseStore {
  /** How messages name the store: 'Redis' or 'Postgres'. */
  readonly name: string;
  /**
   * Takes lease `id` on `server` when fewer than `limit` are live and fewer tickets are
   * queued ahead than leases are free. `ticket` is the caller's place in the fleet-wide
   * FIFO ('' for a caller who will not wait: it only takes a lease nobody queued for); a
   * ticket that got nothing is queued, or stays queued with its expiry refreshed.
   */
  take(server: string, limit: number, id: string, ticket: string, ttlMs: number): Promise<TakeAnswer>;
  /** Gives lease `id` back, announcing it (`released`) when someone is queued. */
  release(server: string, id: string): Promise<void>;
  /** Withdraws a waiter's ticket and announces it, so the ones behind may move up. */
  withdraw(server: string, ticket: string): Promise<void>;
  /**
   * Renews every lease of this process, over all its servers, in one call. A lease that
   * lapsed meanwhile is taken again when its server has room, else reported lost.
   */
  renew(ttlMs: number, servers: readonly RenewRequest[]): Promise<RenewAnswer[]>;
  /** Asks the other processes (`wanted`) to close an idle connection on `server`. */
  want(server: string, from: string): Promise<void>;
  /** Stops listening and closes what the store opened; idempotent. */
  close(): Promise<void>;
}
