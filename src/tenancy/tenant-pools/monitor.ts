/**
 * What TenantPools hears from its pools and tells the world: the counters, the acquire
 * waits, the circuit breaker's bookkeeping, the typed events and the log lines. The pools
 * report through the {@link PoolHooks} built here.
 */
import type { EventEmitter } from 'node:events';
import { TenantConnectionError } from '../../reporting/errors.js';
import type { Logger } from '../../reporting/logger.js';
import type { ConnectionPool } from '../pool/connection-pool.js';
import type { CloseReason, PoolHooks } from '../pool/types.js';
import type { CircuitBreaker } from './circuit-breaker.js';
import {
  type OpenBreaker,
  type PoolCounters,
  type PoolEventInfo,
  type TenantPoolsEventMap,
  WaitSampler,
  zeroCounters,
} from './stats.js';

/** The breaker key of the shared schema-mode pool (a slug can never contain a space). */
const SCHEMA_POOL_KEY = 'schema pool';

/** The breaker key of a pool: its slug, or one key for the shared schema-mode pool. */
export function breakerKey(pool: ConnectionPool): string {
  return pool.slug ?? SCHEMA_POOL_KEY;
}

/** The payload naming a pool in events. */
export function poolInfo(pool: ConnectionPool): PoolEventInfo {
  return { slug: pool.slug, mode: pool.mode, kind: pool.kind };
}

/** Counters, waits, events and logs of one TenantPools. */
export class PoolMonitor {
  readonly counters: PoolCounters = zeroCounters();
  readonly waits = new WaitSampler();
  readonly #events: EventEmitter<TenantPoolsEventMap>;
  readonly #breaker: CircuitBreaker;
  readonly #logger: Logger;

  constructor(events: EventEmitter<TenantPoolsEventMap>, breaker: CircuitBreaker, logger: Logger) {
    this.#events = events;
    this.#breaker = breaker;
    this.#logger = logger;
  }

  /** The hooks every pool reports through; `onSettled` is the cache's business. */
  hooks(onSettled: (pool: ConnectionPool) => void): PoolHooks<ConnectionPool> {
    return {
      checkConnect: (pool) => this.#breaker.check(breakerKey(pool)),
      onConnect: (pool, error) => {
        if (error === undefined) {
          this.counters.connects++;
          this.#breaker.succeeded(breakerKey(pool));
          return undefined;
        }
        this.counters.connectFailures++;
        // The message names tenant, server and cause; the stack (ours, not the server's)
        // only at debug, as a failed job's.
        const code = (error as { code?: unknown } | null)?.code;
        const detail = this.#logger.isLevelEnabled('debug')
          ? { err: error }
          : {
              error: error instanceof Error ? error.message : String(error),
              ...(typeof code === 'string' ? { code } : {}),
            };
        this.#logger.warn({ slug: pool.slug, ...detail }, 'tenant connection failed');
        return this.#breaker.failed(breakerKey(pool), error);
      },
      onOpen: (pool) => this.emit('connection:open', poolInfo(pool)),
      onClose: (pool, reason: CloseReason) => {
        if (reason === 'lifetime') this.counters.recycles++;
        this.emit('connection:close', { ...poolInfo(pool), reason });
      },
      onConnectionError: (pool, error) => this.report(pool.slug, error, 'tenant connection errored'),
      onSettled,
    };
  }

  /** The tenants whose circuit is open now (slug null: the shared schema-mode pool). */
  openBreakers(now = Date.now()): OpenBreaker[] {
    return this.#breaker
      .open(now)
      .map(({ key, ...circuit }) => ({ slug: key === SCHEMA_POOL_KEY ? null : key, ...circuit }));
  }

  /** A connection was lent, `waitedMs` after it was asked for. */
  lent(waitedMs: number): void {
    this.counters.acquires++;
    this.waits.record(waitedMs);
  }

  /** Counts and announces an acquire that ran out of time; returns the error to throw. */
  timedOut<E extends Error & { slug: string }>(error: E, timeoutMs: number): E {
    this.counters.timeouts++;
    this.emit('acquire:timeout', { slug: error.slug, timeoutMs, error });
    return error;
  }

  /** A secret that could not be resolved counts as a failed connect, breaker included. */
  secretFailed(slug: string, error: unknown): void {
    this.counters.connectFailures++;
    this.#breaker.failed(slug, error);
  }

  /**
   * Logs an error no caller will see, and emits it to `error` listeners if there are any.
   * A failed connect was logged where it failed ('tenant connection failed'): it is only
   * emitted, so that one failure makes one log line.
   */
  report(slug: string | null, error: Error, message: string): void {
    if (!(error instanceof TenantConnectionError)) this.#logger.warn({ slug, err: error }, message);
    // An 'error' event nobody listens to would throw, and crash the process.
    if (this.#events.listenerCount('error') > 0) this.emit('error', { slug, error });
  }

  /**
   * Emits an event. A listener that throws is logged, never passed on: it would otherwise
   * break off the pool's bookkeeping half-way (a connection opened but never pooled, a
   * budget slot never freed) or crash the process from a timer or socket callback.
   */
  emit<K extends keyof TenantPoolsEventMap>(name: K, ...args: TenantPoolsEventMap[K]): void {
    try {
      (this.#events.emit as (name: K, ...args: TenantPoolsEventMap[K]) => boolean).call(
        this.#events,
        name,
        ...args,
      );
    } catch (err) {
      this.#logger.warn({ event: name, err }, 'tenant pools: an event listener threw');
    }
  }
}
