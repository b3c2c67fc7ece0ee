/**
 * The types a {@link ConnectionPool} shares with its owner: its options, the hooks it
 * reports through, and the bookkeeping record of one pooled connection.
 */

import type { Backend, RawConnection } from '../drivers/driver.js';
import type { StorageMode } from '../org.js';
import type { ConnectionBudget, IdleSlot } from './budget.js';
import type { ConnectionPool } from './connection-pool.js';
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
  | 'evict'
  | 'close';

/** One raw connection with the pool's bookkeeping. */
export interface PooledConnection extends IdleSlot {
  readonly raw: RawConnection;
  readonly member: ConnectionPool;
  readonly createdAt: number;
  idleSince: number;
  state: 'idle' | 'busy' | 'closing';
  /** Schema mode: the schema of the tenant the connection last served (undefined: none yet). */
  schema?: string | undefined;
}

/** What the owner of a pool (TenantPools) hears from it. */
export interface PoolHooks {
  /** Throws (TenantUnavailableError) when no connection attempt may be made now. */
  checkConnect(pool: ConnectionPool): void;
  /**
   * The outcome of a connect attempt (`error` undefined on success). Returns an error when
   * the circuit breaker has just opened: the error every other waiter then fails with.
   */
  onConnect(pool: ConnectionPool, error: unknown): Error | undefined;
  onOpen(pool: ConnectionPool): void;
  onClose(pool: ConnectionPool, reason: CloseReason): void;
  /** A connection raised an error outside a query (killed by the server while idle…). */
  onConnectionError(pool: ConnectionPool, error: Error): void;
  /** Nothing is lent and nobody waits: the pool may be evicted. */
  onSettled(pool: ConnectionPool): void;
}

/** How one pool is set up. */
export interface ConnectionPoolOptions {
  /** The tenant, or null for the shared schema-mode pool. */
  slug: string | null;
  mode: StorageMode;
  backend: Backend;
  maxConnections: number;
  minConnections: number;
  maxLifetimeMs: number;
  connectTimeoutMs: number;
  budget: ConnectionBudget;
  /** The connection URL, resolved when the pool was built. */
  url: string;
  /** Resolves the connection URL (the secret) again, after a lifetime recycle. */
  resolveUrl(): Promise<string>;
  hooks: PoolHooks;
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
