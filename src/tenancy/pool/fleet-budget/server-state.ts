/**
 * What the fleet budget keeps per database server, and how `TenantPools.stats()` reports
 * it.
 */

/** One server's budget as `TenantPools.stats()` reports it. */
export interface FleetServerStats {
  /** `host:port`. */
  server: string;
  /** Connections the whole fleet may hold on it. */
  limit: number;
  /** Leases live fleet-wide, as the lease store last told this process. */
  leases: number;
  /** Leases this process holds. */
  mine: number;
  /** Callers of this process waiting for a lease. */
  waiting: number;
}

/** The fleet budget as `TenantPools.stats()` reports it. */
export interface FleetBudgetStats {
  /** This process's id in the budget: its lease ids start with it. */
  process: string;
  /** False while the budget's lease store does not answer (no new connection is opened then). */
  reachable: boolean;
  servers: FleetServerStats[];
}

/** One server's budget as this process keeps it. */
export interface ServerState {
  readonly server: string;
  readonly limit: number;
  /** Leases live fleet-wide, as of the store's last answer. */
  live: number;
  /** Callers of this process waiting for a lease. */
  waiting: number;
  /** Wakes those callers (a lease was released, an idle connection appeared, closing). */
  readonly wakers: Set<() => void>;
  /** When this process last asked the others to release a connection here. */
  lastAskedAt: number;
  // Until when the next connection of ours on this server that comes back is closed, because
  // another process asked for one while we had none idle.
  giveBackUntil: number;
}

/** A server's state before anything was asked of it. */
export function newServerState(server: string, limit: number): ServerState {
  return {
    server,
    limit,
    live: 0,
    waiting: 0,
    wakers: new Set(),
    lastAskedAt: 0,
    giveBackUntil: 0,
  };
}
