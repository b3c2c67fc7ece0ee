/** The lease store the fleet budget's options name: Redis or Postgres. */
import type { LeaseStore, LeaseStoreListener } from './lease-store.js';
import type { ResolvedFleetBudgetOptions } from './options.js';
import { PgLeaseStore } from './postgres/pg-store.js';
import { RedisLeaseStore } from './redis/redis-store.js';

/**
 * Opens the store of `options` for process `process` (its lease ids start with it), every
 * call bounded by `timeoutMs`, messages from the other processes to `listener`.
 */
export function openLeaseStore(
  options: ResolvedFleetBudgetOptions,
  process: string,
  timeoutMs: number,
  listener: LeaseStoreListener,
): LeaseStore {
  const { store, prefix } = options;
  return store.kind === 'redis'
    ? new RedisLeaseStore(store.redis, prefix, process, timeoutMs, listener)
    : new PgLeaseStore(store.postgres, prefix, timeoutMs, listener);
}
