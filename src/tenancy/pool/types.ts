/**
 * The types a `ConnectionPool` shares with its owner: its options, the hooks it reports
 * through, and the bookkeeping record of one pooled connection. The hooks and options
 * take the pool's type as a parameter, so this file does not import the pool back.
 */

import type { DatabaseKind, RawConnection } from '../drivers/driver.js';
import type { StorageMode } from '../org.js';
import type { ConnectionBudget, IdleSlot } from './budget.js';
import type { LeaseTaker } from './fleet-budget/lease.js';
import type { WaitSpec } from './wait-queue.js';

/** Why a connection was closed, as the `connection:close` event reports it. */
export type CloseReason =
  | 'idle-timeout'
  | 'lifetime'
  | 'reclaim'
  | 'handover'
  | 'dead'
  | 'released-with-error'
  | 'in-transaction'
  | 'in-flight'
  | 'evict'
  | 'close';

/** One raw connection with the pool's bookkeeping. */
export interface PooledConnection extends IdleSlot {
  readonly raw: RawConnection;
  readonly createdAt: number;
  idleSince: number;
  /**
   * `held`: the pool's, neither parked nor lent (just opened, or just given back, about to
   * be parked, handed on or closed); `idle`: parked; `busy`: lent; `closing`: on its way out.
   */
  state: 'held' | 'idle' | 'busy' | 'closing';
}

/** What the owner of a pool (TenantPools) hears from it. */
export interface PoolHooks<Pool> {
  /** Throws (TenantUnavailableError) when no connection attempt may be made now. */
  checkConnect(pool: Pool): void;
  /**
   * The outcome of a connect attempt (`error` undefined on success). Returns an error when
   * the circuit breaker has just opened: the error every other waiter then fails with.
   */
  onConnect(pool: Pool, error: unknown): Error | undefined;
  onOpen(pool: Pool): void;
  onClose(pool: Pool, reason: CloseReason): void;
  /** A connection raised an error outside a query (killed by the server while idle…). */
  onConnectionError(pool: Pool, error: Error): void;
  /** Nothing is lent and nobody waits: the pool may be evicted. */
  onSettled(pool: Pool): void;
}

/** How one pool is set up. */
export interface ConnectionPoolOptions<Pool> {
  /** The tenant, or null for the shared schema-mode pool. */
  slug: string | null;
  mode: StorageMode;
  kind: DatabaseKind;
  maxConnections: number;
  minConnections: number;
  maxLifetimeMs: number;
  connectTimeoutMs: number;
  budget: ConnectionBudget;
  /** The fleet budget, whose lease every connection to a server takes first (none: no fleet budget). */
  leases?: LeaseTaker | undefined;
  /** The connection URL, resolved when the pool was built. */
  url: string;
  /** Resolves the connection URL (the secret) again, after a lifetime recycle. */
  resolveUrl(): Promise<string>;
  hooks: PoolHooks<Pool>;
}

/** How long `acquire` may wait, what it throws when that runs out, and the schema. */
export interface WaitOptions extends WaitSpec {
  /** In schema mode, the schema every checkout switches `search_path` to. */
  schema?: string | null;
}

/** A snapshot of one pool for `TenantPools.stats()`. */
export interface PoolCounts {
  open: number;
  inUse: number;
  idle: number;
  waiting: number;
}
